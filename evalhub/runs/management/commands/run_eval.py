"""Start an evaluation run from the command line and follow it with a progress bar.

With a broker the run executes on workers and this command polls its progress; without one (the
embedded default) the run executes in this process and the bar follows each saved batch.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import CommandError, CommandParser
from tqdm import tqdm

from evalhub.catalog.models import Adapter, BaseModel
from evalhub.catalog.selectors import adapter_by_label
from evalhub.celery import app as celery_app
from evalhub.cli import DomainCommand
from evalhub.runs import progress
from evalhub.runs.models import Run, RunStatus
from evalhub.runs.selectors import run_progress
from evalhub.runs.services import run_cancel, run_create, run_resume, run_start
from evalhub.suites.models import SuiteVersion

POLL_SECONDS = 1.0


class Command(DomainCommand):
    help = (
        "Create and start a run of a suite over adapters (name@version), showing progress until it ends; "
        "or --resume / --cancel an existing run."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # --version means the suite version here, replacing Django's "show the Django version".
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", help="Project slug.")
        parser.add_argument("--suite", help="Suite name.")
        parser.add_argument("--version", type=int, help="Suite version number (default: the newest).")
        parser.add_argument("--base-model", help="Name of a registered base model.")
        parser.add_argument("--adapter", action="append", default=[], help="name@version; repeat for more.")
        parser.add_argument("--baseline", help="name@version of the baseline adapter.")
        parser.add_argument("--backend", default="hf", help="hf (default) or vllm.")
        parser.add_argument("--max-new-tokens", type=int)
        parser.add_argument("--temperature", type=float)
        parser.add_argument("--top-p", type=float)
        parser.add_argument("--seed", type=int)
        parser.add_argument("--stop", action="append", help="A stop string; repeat for more.")
        parser.add_argument("--truncation", choices=["left", "reject"],
                            help="Over-long cases: cut from the left (flagged) or reject (default left).")
        parser.add_argument("--max-prompt-tokens", type=int)
        parser.add_argument("--no-chat-template", action="store_true")
        parser.add_argument("--samples", type=int, default=1, help="Samples per case (default 1).")
        parser.add_argument("--force", action="store_true", help="Regenerate instead of reusing cached outputs.")
        parser.add_argument("--judge-checks", action="store_true",
                            help="Evaluate the suite's pending checks (llm-rubric, factuality, ...) with the judge.")
        parser.add_argument("--judge-adapter", help="name@version of the judge's adapter (with --judge-checks).")
        parser.add_argument("--name", default="")
        parser.add_argument("--no-wait", action="store_true", help="Start and return without following it.")
        parser.add_argument("--resume", type=int, metavar="RUN_ID", help="Resume a cancelled or failed run.")
        parser.add_argument("--cancel", type=int, metavar="RUN_ID", help="Cancel a run.")
        parser.add_argument("--as-user", help="Username recorded in the audit trail.")

    def run(self, *args: Any, **options: Any) -> None:
        actor = self.get_actor(options.get("as_user"))
        if options.get("cancel"):
            run = run_cancel(run=self._get_run(options["cancel"]), actor=actor)
            self.stdout.write(f"Cancelled run {run.pk} at {run.done}/{run.total} outputs.")
            return
        if options.get("resume"):
            run = self._get_run(options["resume"])
            self.stdout.write(f"Resuming run {run.pk} ({run.name}) at {run.done}/{run.total} outputs.")
            self._follow(run, options, lambda: run_resume(run=run, actor=actor))
            return
        run = self._create(options, actor)
        self.stdout.write(
            f"Run {run.pk}: {run.name} (backend {run.backend}, config {run.config_hash[:12]}"
            f"{', forced regeneration' if run.force_regenerate else ''})"
        )
        self._follow(run, options, lambda: run_start(run=run, actor=actor))

    # ---- input -------------------------------------------------------------------------------

    @staticmethod
    def _get_run(run_id: int) -> Run:
        run = Run.objects.filter(pk=run_id).first()
        if run is None:
            raise CommandError(f"No run with id {run_id}.")
        return run

    def _create(self, options: dict[str, Any], actor: Any) -> Run:
        for required in ("project", "suite", "base_model"):
            if not options.get(required):
                raise CommandError(f"--{required.replace('_', '-')} is required to start a run.")
        if not options["adapter"] and not options.get("baseline"):
            raise CommandError("Give at least one --adapter name@version.")
        project = self.get_project(options["project"])
        versions = SuiteVersion.objects.filter(suite__project=project, suite__name=options["suite"])
        if options.get("version") is not None:
            versions = versions.filter(number=options["version"])
        suite_version = versions.order_by("-number").first()
        if suite_version is None:
            which = f" version {options['version']}" if options.get("version") is not None else ""
            raise CommandError(f"No suite {options['suite']!r}{which} in {project.slug}.")
        base_model = BaseModel.objects.filter(project=project, name=options["base_model"]).first()
        if base_model is None:
            raise CommandError(f"No base model named {options['base_model']!r} in {project.slug}.")
        adapters = [self._adapter(project, label) for label in options["adapter"]]
        baseline = self._adapter(project, options["baseline"]) if options.get("baseline") else None
        config: dict[str, Any] = {}
        for option, field in (
            ("max_new_tokens", "max_new_tokens"),
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("seed", "seed"),
            ("truncation", "truncation"),
            ("max_prompt_tokens", "max_prompt_tokens"),
            ("stop", "stop"),
        ):
            if options.get(option) is not None:
                config[field] = options[option]
        if options.get("no_chat_template"):
            config["use_chat_template"] = False
        return run_create(
            project=project,
            suite_version=suite_version,
            base_model=base_model,
            adapters=adapters,
            baseline=baseline,
            backend=options["backend"],
            generation_config=config,
            samples_per_case=options["samples"],
            force_regenerate=options["force"],
            judge_checks=options["judge_checks"],
            judge_adapter=self._adapter(project, options["judge_adapter"]) if options.get("judge_adapter") else None,
            name=options["name"],
            actor=actor,
        )

    @staticmethod
    def _adapter(project: Any, label: str) -> Adapter:
        adapter = adapter_by_label(project=project, label=label)
        if adapter is None:
            raise CommandError(f"No adapter {label!r} in {project.slug} (use name@version).")
        return adapter

    # ---- progress ----------------------------------------------------------------------------

    def _follow(self, run: Run, options: dict[str, Any], start: Any) -> None:
        eager = bool(celery_app.conf.task_always_eager)
        # The bar writes to the raw stream: Django's OutputWrapper would end every redraw with a newline.
        stream: Any = self.stderr._out
        bar = tqdm(total=max(run.total, 1), initial=0, unit="out", desc=f"run {run.pk}", file=stream,
                   dynamic_ncols=True)

        def update(run_id: int) -> None:
            if run_id != run.pk:
                return
            info = run_progress(run=Run.objects.get(pk=run_id))
            bar.total = max(info["total"], 1)
            bar.n = info["done"]
            rate = info["tokens_per_second"]
            bar.set_postfix_str(f"{rate:.0f} tok/s, {info['reused']} reused" if rate else
                                f"{info['reused']} reused", refresh=False)
            bar.refresh()

        try:
            if eager:
                with progress.listening(update):
                    start()
            else:
                start()
                if not options.get("no_wait"):
                    while True:
                        update(run.pk)
                        run.refresh_from_db()
                        if run.status not in (RunStatus.PENDING, RunStatus.RUNNING):
                            break
                        time.sleep(POLL_SECONDS)
            update(run.pk)
        finally:
            bar.close()
        run.refresh_from_db()
        self._report(run, waited=eager or not options.get("no_wait"))

    def _report(self, run: Run, *, waited: bool) -> None:
        info = run_progress(run=run)
        if run.status == RunStatus.FAILED:
            raise CommandError(f"Run {run.pk} failed: {run.error}")
        if not waited:
            self.stdout.write(f"Run {run.pk} is {run.status}; follow it with the API or the web page.")
            return
        if run.status == RunStatus.CANCELLED:
            raise CommandError(f"Run {run.pk} was cancelled at {run.done}/{run.total} outputs.")
        rate = f", {info['tokens_per_second']} tokens/s" if info["tokens_per_second"] else ""
        self.stdout.write(
            f"Run {run.pk} {run.status}: {run.done}/{run.total} outputs ({run.reused} reused, "
            f"{info['rejected']} rejected, {info['truncated']} truncated){rate}."
        )
