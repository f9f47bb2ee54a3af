"""Readiness checks (selectors): the database, the broker, the workers listening on each queue, and whether
the gpu workers see a GPU. Each check returns a dict with `ok` and what it found; none raises."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)

#: How long /readyz waits for the broker and for the workers' replies.
CHECK_TIMEOUT_SECONDS = 1


def broker_embedded() -> bool:
    """No broker: tasks run in the calling process (the embedded default), so there are no workers."""
    return not settings.CELERY_BROKER_URL or bool(settings.CELERY_TASK_ALWAYS_EAGER)


def check_database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True, "vendor": connection.vendor}
    except Exception as exc:  # any failure means not ready; say which
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _expected_queues() -> list[str]:
    return list(settings.EVALHUB_READY_QUEUES)


def check_broker_and_workers() -> dict[str, Any]:
    """The broker answers; each expected queue has a worker; gpu-queue workers configured for CUDA see one."""
    if broker_embedded():
        return {"broker": {"ok": True, "mode": "in process (no broker)"}, "queues": {}, "workers": {}}
    from celery import Celery

    # A throw-away client app bound to the configured broker: the project app's producer pool would
    # retry a dead broker forever, and /readyz must answer within its timeout.
    probe = Celery("evalhub-readyz", broker=settings.CELERY_BROKER_URL, set_as_current=False)
    # The same transport options as the workers (a key prefix above all): else the probe asks an empty room.
    probe.conf.broker_transport_options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    try:
        with probe.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_SECONDS)
            inspect = probe.control.inspect(timeout=CHECK_TIMEOUT_SECONDS, connection=conn)
            active: dict[str, Any] = inspect.active_queues() or {}
            replies = inspect._request("evalhub_device") if active else None
    except Exception as exc:
        return {"broker": {"ok": False, "error": f"{type(exc).__name__}: {exc}"}, "queues": {}, "workers": {}}
    finally:
        probe.close()
    devices: dict[str, Any] = replies if isinstance(replies, dict) else {}
    queues: dict[str, list[str]] = {name: [] for name in _expected_queues()}
    for worker, listening in active.items():
        for queue in listening:
            queues.setdefault(queue["name"], []).append(worker)
    workers = {worker: _worker_device(devices.get(worker), gpu=worker in queues.get("gpu", [])) for worker in active}
    return {
        "broker": {"ok": True},
        "queues": {name: {"ok": bool(found), "workers": sorted(found)} for name, found in sorted(queues.items())},
        "workers": workers,
    }


def _worker_device(info: dict[str, Any] | None, *, gpu: bool) -> dict[str, Any]:
    if info is None:
        return {"ok": not gpu, "error": "no device reply"} if gpu else {"ok": True}
    wants_cuda = str(info.get("configured", "auto")).startswith("cuda")
    ok = not gpu or not wants_cuda or bool(info.get("cuda_available"))
    return {"ok": ok, "gpu_queue": gpu, **info}


def readiness() -> dict[str, Any]:
    """Everything /readyz reports; `ok` only when every part is."""
    database = check_database()
    broker = check_broker_and_workers()
    ok = (
        database["ok"]
        and broker["broker"]["ok"]
        and all(q["ok"] for q in broker["queues"].values())
        and all(w["ok"] for w in broker["workers"].values())
    )
    return {"ok": ok, "database": database, **broker}
