"""evalhub: decide whether a fine-tuned LLM adapter is ready to ship."""

try:
    from evalhub.celery import app as celery_app
except ImportError:  # pragma: no cover - a GPU box or the vLLM venv may run evalhub.generation without Celery
    celery_app = None  # type: ignore[assignment]

__all__ = ["celery_app"]
