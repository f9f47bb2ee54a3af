"""evalhub: decide whether a fine-tuned LLM adapter is ready to ship.

This package imports nothing on purpose: `evalhub.generation` must load on a GPU box or in the
vLLM venv, where neither Django nor Celery is installed. Django processes get the Celery app
from `evalhub.apps.EvalhubConfig.ready`; workers find it as `celery -A evalhub` (`evalhub.celery`).
"""
