"""Compute a completed run's automatic scores again: the missing ones, or all of them with --force.

With a broker the scoring tasks go to the workers (text metrics on `cpu`, perplexity on `gpu`), as
when the run completed; without one (the embedded default), or with --in-process, they run here.
Either way it prints each kind's scoring state afterwards; a kind that failed exits non-zero.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from evalhub.celery import app as celery_app
from evalhub.cli import DomainCommand
from evalhub.runs.models import Run, ScoringStatus
from evalhub.runs.scoring import check_run_scorable, run_score, score_enqueue
from evalhub.runs.selectors import run_scoring


class Command(DomainCommand):
    help = (
        "Score a completed run: compute the metric scores it lacks (ROUGE, BLEU, chrF, embedding "
        "similarity, length ratios, adversarial checks, perplexity); --force recomputes them all."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run", type=int, metavar="RUN_ID", help="The run's id.")
        parser.add_argument(
            "--force", action="store_true", help="Delete the run's stored scores and compute them all again."
        )
        parser.add_argument(
            "--in-process", action="store_true", help="Score here even when a broker is configured."
        )

    def run(self, *args: Any, **options: Any) -> None:
        run = Run.objects.filter(pk=options["run"]).first()
        if run is None:
            raise CommandError(f"No run with id {options['run']}.")
        check_run_scorable(run=run)
        force = bool(options["force"])
        if options["in_process"] or celery_app.conf.task_always_eager:
            try:
                written = run_score(run_id=run.pk, force=force)
            except Exception:  # recorded in the kind's state, printed below
                written = None
            if written is not None:
                self.stdout.write(
                    f"Run {run.pk} scored{' from scratch' if force else ''}: {written['text']} text and check "
                    f"scores and {written['perplexity']} perplexity scores written."
                )
        else:
            score_enqueue(run_id=run.pk, force=force)
            which = "all its scores, from scratch" if force else "the scores it lacks"
            self.stdout.write(
                f"Run {run.pk}: scoring queued (text metrics and checks on the cpu queue, perplexity on the "
                f"gpu queue); the workers write {which}."
            )
        self.write_states(run)

    def write_states(self, run: Run) -> None:
        """One line per kind. No counts here: the summary line above carries them (scripts read it)."""
        failed = []
        for state in run_scoring(run=run):
            line = f"  {state['label']}: {state['status']}"
            if state["status"] == ScoringStatus.FAILED:
                failed.append(state["label"])
                line += f" ({state['error']})"
            self.stdout.write(line)
        if failed:
            raise CommandError(f"Run {run.pk}: scoring failed ({', '.join(failed)}); the error is above.")
