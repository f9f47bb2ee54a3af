"""Login throttling: after N failed log-ins for one username from one address, that pair is locked.

Counters live in the cache (Redis in production), keyed by a hash of the username and the client
address, so a lock never blocks the real user logging in from elsewhere and the cache holds no names.
We keep this small module rather than add django-axes: the rule is a dozen lines, it records through
our own audit trail, and it needs no extra tables or middleware.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache

DEFAULT_FAILURE_LIMIT = 5
DEFAULT_LOCKOUT_SECONDS = 15 * 60


def failure_limit() -> int:
    return int(getattr(settings, "EVALHUB_LOGIN_FAILURE_LIMIT", DEFAULT_FAILURE_LIMIT))


def lockout_seconds() -> int:
    return int(getattr(settings, "EVALHUB_LOGIN_LOCKOUT_SECONDS", DEFAULT_LOCKOUT_SECONDS))


def client_ip(request: Any) -> str:
    """The peer address. A reverse proxy must set REMOTE_ADDR; X-Forwarded-For is not trusted here."""
    if request is None:
        return ""
    return str(request.META.get("REMOTE_ADDR", ""))


def _key(kind: str, username: str, ip: str) -> str:
    digest = hashlib.sha256(f"{username.strip().casefold()}|{ip}".encode()).hexdigest()
    return f"evalhub:login:{kind}:{digest}"


def login_locked_for(*, username: str, ip: str) -> int:
    """Seconds until the username may log in again from this address; 0 when not locked."""
    until = cache.get(_key("lock", username, ip))
    if until is None:
        return 0
    return max(0, int(until - time.time()) + 1)


def login_failure_record(*, username: str, ip: str) -> bool:
    """Count one failure; return True when this failure locks the pair."""
    key = _key("fail", username, ip)
    window = lockout_seconds()
    cache.add(key, 0, timeout=window)
    try:
        failures = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window)
        failures = 1
    if failures < failure_limit():
        return False
    cache.set(_key("lock", username, ip), time.time() + window, timeout=window)
    cache.delete(key)
    return True


def login_failures_clear(*, username: str, ip: str) -> None:
    cache.delete_many([_key("fail", username, ip), _key("lock", username, ip)])
