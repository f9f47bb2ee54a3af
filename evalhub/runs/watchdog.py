"""The watchdog: finds running runs whose work stopped moving and sends that work again.

A chunk's message can be lost with a worker killed by `kill -9` (acks_late redelivers it only after the
broker's visibility timeout, an hour by default) or with a broker restarted without persistence. The
watchdog runs every EVALHUB_WATCHDOG_INTERVAL_SECONDS (beat) and re-enqueues, for each running run:

- a running chunk with no progress (no lease, no saved output) for EVALHUB_CHUNK_LEASE_SECONDS: its lease
  expired; it goes back to pending and is counted in `lease_expiries`;
- pending chunks, or the preparation of a run that has none yet, when nothing of the run moved for a lease.

Re-enqueuing is harmless: a chunk generates only the outputs its run lacks, and `_lease_chunk` bounds the
attempts (a chunk that kills every worker fails its run). The run's `watchdog_at` starts a new lease, so
the next tick does not send the same work again, and `watchdog_note` tells the run page why it was sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from evalhub.audit.services import audit_record
from evalhub.runs import progress
from evalhub.runs.hooks import on_run_stalled
from evalhub.runs.models import ChunkStatus, Output, Run, RunChunk, RunScoring, RunStatus, ScoringStatus
from evalhub.runs.scoring import scoring_send
from evalhub.runs.services import _complete_if_done_locked, _enqueue_chunks, _enqueue_prepare

log = logging.getLogger(__name__)


@dataclass
class HealReport:
    """What one watchdog pass did: run id -> chunk indexes sent again (empty list: the preparation)."""

    resent: dict[int, list[int]] = field(default_factory=dict)
    lease_expiries: int = 0
    rescored: list[tuple[int, str]] = field(default_factory=list)  # (run id, scoring kind) sent again


def lease_seconds() -> int:
    return int(settings.EVALHUB_CHUNK_LEASE_SECONDS)


def _latest(*moments: datetime | None) -> datetime | None:
    present = [m for m in moments if m is not None]
    return max(present) if present else None


def _chunk_progress_at(chunk: RunChunk) -> datetime | None:
    """The chunk's last sign of life: its lease, or the newest output of its cases."""
    last_output = Output.objects.filter(run_id=chunk.run_id, case_id__in=chunk.case_ids).aggregate(
        at=Max("created_at")
    )["at"]
    return _latest(chunk.leased_at, last_output)


def _run_progress_at(run: Run) -> datetime | None:
    chunks = run.chunks.aggregate(at=Max("leased_at"))["at"]
    outputs = Output.objects.filter(run_id=run.pk).aggregate(at=Max("created_at"))["at"]
    return _latest(run.started_at, run.watchdog_at, chunks, outputs)


def runs_heal(*, now: datetime | None = None) -> HealReport:
    """One watchdog pass over every running run (the beat task's body). Safe to run at any moment."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=lease_seconds())
    report = HealReport()
    stale = Run.objects.filter(status=RunStatus.RUNNING, started_at__lt=cutoff).values_list("pk", flat=True)
    for run_id in list(stale):
        run_heal(run_id=run_id, now=now, cutoff=cutoff, report=report)
    scorings_heal(cutoff=cutoff, report=report)
    return report


def scorings_heal(*, cutoff: datetime, report: HealReport) -> None:
    """Send again each scoring kind queued for a lease that no worker took (its message was lost).

    A kind that is running is left alone: its task is on a worker, and a killed worker's message comes
    back through acks_late. Sending twice is harmless: a scoring task stores only the scores still missing.
    """
    lost = RunScoring.objects.filter(status=ScoringStatus.QUEUED, updated_at__lt=cutoff)
    for run_id, kind in list(lost.values_list("run_id", "kind")):
        log.warning("run %s: its %s scoring was queued for %s s and no worker took it; sent again",
                    run_id, kind, lease_seconds())
        scoring_send(run_id=run_id, kind=kind)
        report.rescored.append((run_id, kind))


def run_heal(*, run_id: int, now: datetime, cutoff: datetime, report: HealReport) -> None:
    """Expire the run's stalled chunks and re-enqueue its work if nothing moved since `cutoff`.

    Locks the run row (skipping it if a worker holds it: that worker is making progress).
    """
    with transaction.atomic():
        run = Run.objects.select_for_update(skip_locked=True).filter(pk=run_id, status=RunStatus.RUNNING).first()
        if run is None:
            return
        chunks = list(run.chunks.select_for_update().exclude(status=ChunkStatus.DONE).order_by("index"))
        expired = [
            c for c in chunks if c.status == ChunkStatus.RUNNING and (_chunk_progress_at(c) or now) < cutoff
        ]
        idle = (_run_progress_at(run) or now) < cutoff
        if not expired and not idle:
            return
        if not run.chunks.exists():
            note = "the run was not prepared (its message was probably lost); the watchdog sent it again"
            _enqueue_prepare(run.pk)
            resent: list[int] = []
        else:
            for chunk in expired:
                RunChunk.objects.filter(pk=chunk.pk).update(
                    status=ChunkStatus.PENDING, lease_expiries=chunk.lease_expiries + 1
                )
            resent = [c.index for c in chunks if c in expired or (idle and c.status == ChunkStatus.PENDING)]
            if not resent:  # every chunk is done: only the completion was missed
                _complete_if_done_locked(run)
                return
            note = _note(expired, resent)
            _enqueue_chunks(run.pk, resent)
        run.watchdog_at = now
        run.watchdog_note = f"{now:%Y-%m-%d %H:%M:%S %Z}: {note}."
        run.save(update_fields=["watchdog_at", "watchdog_note"])
        audit_record(actor=None, action="run.heal", obj=run, after={"resent": resent}, note=run.watchdog_note)
        stall_note = run.watchdog_note
        transaction.on_commit(lambda: on_run_stalled(run_id, stall_note))
    log.warning("run %s: %s", run_id, run.watchdog_note)
    report.resent[run_id] = resent
    report.lease_expiries += len(expired)
    progress.notify(run_id)


def _note(expired: list[RunChunk], resent: list[int]) -> str:
    seconds = lease_seconds()
    parts = []
    if expired:
        workers = ", ".join(sorted({c.leased_by for c in expired if c.leased_by})) or "unknown worker"
        parts.append(
            f"the lease of chunk {', '.join(str(c.index) for c in expired)} expired with no progress for "
            f"{seconds} s (last worker {workers}, probably killed)"
        )
    waiting = [i for i in resent if i not in {c.index for c in expired}]
    if waiting:
        parts.append(
            f"no worker took pending chunk {', '.join(map(str, waiting))} for {seconds} s "
            "(messages lost or the queue busy)"
        )
    return "; ".join(parts) + "; the watchdog sent them again"
