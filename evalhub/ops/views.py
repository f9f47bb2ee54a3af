"""Liveness (/healthz), readiness (/readyz) and Prometheus metrics (/metrics) for load balancers and
monitoring. None needs a login; /metrics needs EVALHUB_METRICS_TOKEN."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from evalhub.ops.checks import readiness
from evalhub.ops.metrics import registry


def healthz(request: HttpRequest) -> HttpResponse:
    """The process answers. Touches no service: a database outage must not get the web processes restarted."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> HttpResponse:
    """200 when the database, the broker and a worker on every queue answer (and gpu workers see their
    GPU); 503 with what failed otherwise, so a load balancer sends no traffic to a process that cannot serve."""
    report = readiness()
    response = JsonResponse({"status": "ready" if report["ok"] else "not ready", **report},
                            status=200 if report["ok"] else 503)
    response["Cache-Control"] = "no-store"
    return response


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, for `Authorization: Bearer <EVALHUB_METRICS_TOKEN>` only; with no token set the
    endpoint does not exist (404), so project counts never leak from a deployment that did not ask for them."""
    token = str(settings.EVALHUB_METRICS_TOKEN)
    if not token:
        raise Http404
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        response = HttpResponse("A bearer token is required.", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
