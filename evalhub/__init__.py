"""evalhub: decide whether a fine-tuned LLM adapter is ready to ship."""

from evalhub.celery import app as celery_app

__all__ = ["celery_app"]
