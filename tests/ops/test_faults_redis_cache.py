"""A cache on Redis that went away answers 503 with Retry-After, not 500: every API request reads the cache
(DRF's throttles), and redis-py's ConnectionError is not the built-in one the task policy knows."""

from __future__ import annotations

from typing import Any

from django.test import Client, override_settings

from tests.own_services import free_port


def test_an_api_request_while_the_cache_redis_is_away_answers_503_with_retry_after(engineer: Any) -> None:
    client = Client()
    client.force_login(engineer)
    away = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                        "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}
    with override_settings(CACHES=away, EVALHUB_RETRY_AFTER_SECONDS=3):
        response = client.get("/api/v1/me/")
    assert response.status_code == 503
    assert response["Retry-After"] == "3"
    assert response.json()["error"]["code"] == "unavailable"
