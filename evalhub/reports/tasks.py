"""Celery tasks of reports: building a report into the cache, so the report page answers at once
and polls while a large report builds (in process, with no broker, it runs in the caller)."""

from __future__ import annotations

from typing import Any

from evalhub.celery import evalhub_task
from evalhub.reports import services


def _build_gave_up(name: str, exc: Exception, kwargs: dict[str, Any]) -> None:
    services.report_build_failed(key=kwargs["key"], error=f"The report could not be built: {exc}")


@evalhub_task(give_up=_build_gave_up, soft_time_limit=600, time_limit=660)
def build_report(
    *, run_id: int, candidate_id: int, baseline_id: int, options: dict[str, Any], key: str
) -> None:
    """``options``: report_build's other parameters (JSON values: exclude_raters_below, ...)."""
    services.report_build_for_cache(
        run_id=run_id, candidate_id=candidate_id, baseline_id=baseline_id, options=options, key=key
    )
