"""A remote-control command every worker answers, so /readyz can say whether a gpu worker sees its GPU.

Registered when the Celery app loads (evalhub/celery.py imports this module), so it exists in every worker.
"""

from __future__ import annotations

from typing import Any

from celery.worker.control import inspect_command


@inspect_command()
def evalhub_device(state: Any) -> dict[str, Any]:
    """The worker's configured device and what torch sees (imported here: workers have it loaded anyway)."""
    from django.conf import settings

    info: dict[str, Any] = {"configured": str(settings.EVALHUB_DEVICE), "cuda_available": False, "cuda_devices": 0}
    try:
        import torch
    except ImportError:  # a cpu-only worker without torch
        info["torch"] = False
        return info
    info["cuda_available"] = bool(torch.cuda.is_available())
    info["cuda_devices"] = int(torch.cuda.device_count()) if info["cuda_available"] else 0
    return info
