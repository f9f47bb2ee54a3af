"""A project's HTTP judge endpoints: check and store them (API, CLI and admin all come here), describe
them without their secret, and build the judge from one.

The API key is write-only: ``endpoint_describe`` says only whether one is set, and the audit trail
records that it changed, never its value.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction

from evalhub.accounts.models import Project
from evalhub.audit.services import audit_record
from evalhub.errors import Conflict, NotFound, ValidationFailed
from evalhub.judging.models import JudgeApi, JudgeEndpoint
from evalhub.outbound import check_outbound_url
from evalhub.untrusted import unstorable

if TYPE_CHECKING:  # the judge's module loads torch (through logprob); the services must not at import time
    from evalhub.judging.http import HttpJudge

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_TIMEOUT_SECONDS = 600.0
MAX_CONCURRENCY = 64
MAX_RETRIES = 10
_KEEP = object()


def check_endpoint_url(url: str) -> str:
    """evalhub.outbound's rule (the webhooks' one) on the ``base_url`` field, and no credentials or
    query in the URL: a key in the URL would be shown back wherever the URL is."""
    url = check_outbound_url(
        url,
        what="judge endpoint",
        field="base_url",
        allow_private=settings.EVALHUB_JUDGE_ALLOW_PRIVATE,
        allow_setting="EVALHUB_JUDGE_ALLOW_PRIVATE",
    )
    parts = urlsplit(url)
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValidationFailed(
            "A judge endpoint URL carries no user, password, query or fragment; put the key in api_key.",
            fields={"base_url": ["No credentials, query or fragment."]},
        )
    return url.rstrip("/")


def _text(field: str, value: Any, *, limit: int, required: bool = True) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} is text.", fields={field: ["Text expected."]})
    value = value.strip()
    if required and not value:
        raise ValidationFailed(f"{field} is required.", fields={field: ["Required."]})
    if len(value) > limit:
        raise ValidationFailed(
            f"{field} is at most {limit} characters.", fields={field: [f"At most {limit}."]}
        )
    if unstorable(value) is not None:
        raise ValidationFailed(
            f"{field} has characters that cannot be stored.", fields={field: ["Invalid characters."]}
        )
    return value


def _number(field: str, value: Any, *, low: float, high: float, integer: bool) -> Any:
    kind = int if integer else float
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer and value != int(value):
        ok = False
    if not ok or not (low <= value <= high) or (not integer and value <= 0):
        bounds = f"from {low:g} to {high:g}" if integer else f"above 0 and at most {high:g}"
        raise ValidationFailed(f"{field} is a number {bounds}.", fields={field: [f"A number {bounds}."]})
    return kind(value)


def _api_key(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationFailed("api_key is text.", fields={"api_key": ["Text expected."]})
    value = value.strip()
    if len(value) > 500 or any(c.isspace() or not c.isprintable() or not c.isascii() for c in value):
        raise ValidationFailed(  # (an HTTP header carries ASCII only)
            "api_key is at most 500 printable ASCII characters without spaces.",
            fields={"api_key": ["Invalid key."]},
        )
    return value


def endpoint_describe(endpoint: JudgeEndpoint) -> dict[str, Any]:
    """Everything about the endpoint except its key, of which only its presence is shown."""
    return {
        "name": endpoint.name,
        "base_url": endpoint.base_url,
        "model": endpoint.model,
        "api": endpoint.api,
        "api_key_set": bool(endpoint.api_key),
        "timeout_seconds": endpoint.timeout_seconds,
        "concurrency": endpoint.concurrency,
        "max_retries": endpoint.max_retries,
        "constrained": endpoint.constrained,
        "updated_at": endpoint.updated_at.isoformat() if endpoint.updated_at else None,
    }


def endpoint_get(*, project: Project, name: str) -> JudgeEndpoint:
    endpoint = JudgeEndpoint.objects.filter(project=project, name=name).first()
    if endpoint is None:
        raise NotFound(f"No judge endpoint {name!r} in the project.", fields={"name": ["Unknown endpoint."]})
    return endpoint


def endpoint_values(
    *,
    name: str,
    base_url: str,
    model: str,
    api: str = JudgeApi.CHAT,
    api_key: Any = _KEEP,
    timeout_seconds: Any = 30.0,
    concurrency: Any = 4,
    max_retries: Any = 3,
    constrained: bool = False,
) -> dict[str, Any]:
    """The checked values (field-level ``ValidationFailed`` on the first bad one); no ``api_key`` in
    them when it was left out."""
    name = _text("name", name, limit=100)
    if not NAME.fullmatch(name):
        raise ValidationFailed(
            "A judge endpoint name is letters, digits, '.', '_' and '-', starting with a letter or digit.",
            fields={"name": ["Letters, digits, . _ - only."]},
        )
    if api not in JudgeApi.values:
        choices = ", ".join(JudgeApi.values)
        raise ValidationFailed(f"api is one of {choices}.", fields={"api": [f"One of {choices}."]})
    values: dict[str, Any] = {
        "name": name,
        "base_url": check_endpoint_url(_text("base_url", base_url, limit=500)),
        "model": _text("model", model, limit=200),
        "api": api,
        "timeout_seconds": _number(
            "timeout_seconds", timeout_seconds, low=0, high=MAX_TIMEOUT_SECONDS, integer=False
        ),
        "concurrency": _number("concurrency", concurrency, low=1, high=MAX_CONCURRENCY, integer=True),
        "max_retries": _number("max_retries", max_retries, low=0, high=MAX_RETRIES, integer=True),
        "constrained": bool(constrained),
    }
    if api_key is not _KEEP:
        values["api_key"] = _api_key(api_key)
    return values


def endpoint_save(
    *, project: Project, create: bool | None = None, actor: Any = None, **fields: Any
) -> JudgeEndpoint:
    """Check every field (``endpoint_values``), then create or replace the endpoint named ``name``.
    ``api_key`` left out keeps the stored key; "" clears it. ``create``: True refuses an existing name
    (409), False refuses a missing one (404), None does either."""
    values = endpoint_values(**fields)
    name = values.pop("name")
    key_changed = "api_key" in values
    with transaction.atomic():
        endpoint = JudgeEndpoint.objects.select_for_update().filter(project=project, name=name).first()
        if endpoint is not None and create is True:
            raise Conflict(f"A judge endpoint {name!r} exists already.", fields={"name": ["Name taken."]})
        if endpoint is None and create is False:
            raise NotFound(
                f"No judge endpoint {name!r} in the project.", fields={"name": ["Unknown endpoint."]}
            )
        before = endpoint_describe(endpoint) if endpoint is not None else None
        if endpoint is None:
            endpoint = JudgeEndpoint(project=project, name=name)
        for key, value in values.items():
            setattr(endpoint, key, value)
        try:
            with transaction.atomic():
                endpoint.save()
        except IntegrityError as exc:  # a concurrent create of the same name
            raise Conflict(
                f"A judge endpoint {name!r} exists already.", fields={"name": ["Name taken."]}
            ) from exc
        after = {**endpoint_describe(endpoint), "api_key_changed": key_changed}
        after.pop("updated_at")
        if before is not None:
            before.pop("updated_at")
        audit_record(actor=actor, action="judge_endpoint.save", obj=endpoint, before=before, after=after)
    return endpoint


def endpoint_delete(*, endpoint: JudgeEndpoint, actor: Any = None) -> None:
    with transaction.atomic():
        audit_record(
            actor=actor, action="judge_endpoint.delete", obj=endpoint, before={"name": endpoint.name}
        )
        endpoint.delete()


def http_judge_for(endpoint: JudgeEndpoint) -> HttpJudge:
    """The judge for a stored endpoint. The URL is checked again (a name may resolve elsewhere now)."""
    from evalhub.judging.http import HttpJudge

    return HttpJudge(
        base_url=check_endpoint_url(endpoint.base_url),
        model=endpoint.model,
        api=endpoint.api,  # type: ignore[arg-type]
        api_key=endpoint.api_key,
        timeout_s=endpoint.timeout_seconds,
        concurrency=endpoint.concurrency,
        max_retries=endpoint.max_retries,
        constrained=endpoint.constrained,
        name=f"http:{endpoint.name}",
    )
