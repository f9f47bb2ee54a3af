"""`make demo`: the main job end to end on the embedded default, then the web app serving.

Registers the fixture base model and adapters, imports the sample suites, generates outputs, scores
them, opens a blinded rating queue (with a few simulated expert ratings so the report has data) and
builds a report with a verdict. Then it prints the logins and serves http://127.0.0.1:8000.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from evalhub import demo

PASSWORD = "evalhub-demo-2026"  # noqa: S105  (printed for the local demo on purpose)


class Command(BaseCommand):
    help = "Run the whole evalhub pipeline on the fixture models and serve the web app."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-serve", action="store_true", help="Stop after the pipeline instead of serving."
        )
        parser.add_argument(
            "--addr", default="127.0.0.1:8000", help="Where to serve (runserver's addrport); the printed links follow it."
        )
        parser.add_argument(
            "--cases",
            type=int,
            default=24,
            help="Summarisation cases to generate for (all adversarial cases are used).",
        )
        parser.add_argument(
            "--keep", action="store_true", help="Keep an existing demo database instead of starting afresh."
        )

    def step(self, title: str, fn: Callable[[], Any]) -> Any:
        self.stdout.write(self.style.MIGRATE_HEADING(f"▶ {title}"))
        started = time.monotonic()
        result = fn()
        self.stdout.write(f"  done in {time.monotonic() - started:.1f}s")
        return result

    def handle(self, *args: Any, **options: Any) -> None:
        db = settings.DATABASES["default"]
        if not options["keep"] and db["ENGINE"].endswith("sqlite3"):
            path = Path(db["NAME"])
            if path.exists() and settings.DATA_DIR in path.parents:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
        call_command("migrate", verbosity=0)
        state = demo.DemoState(password=PASSWORD, cases=options["cases"])
        self.step("Users and project", lambda: demo.setup_users(state))
        self.step(
            "Register the fixture base model and adapters", lambda: demo.register_models(state, self.stdout)
        )
        for title, fn in demo.PIPELINE:
            try:
                self.step(title, lambda fn=fn: fn(state, self.stdout))  # type: ignore[misc]
            except demo.StepUnavailable as exc:
                self.stdout.write(self.style.WARNING(f"  skipped: {exc}"))
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("evalhub demo is ready."))
        base_url = demo.served_base_url(options["addr"])  # the links name the address really served
        for line in demo.summary_lines(state, base_url):
            self.stdout.write(line)
        if options["no_serve"]:
            return
        self.stdout.write(f"\nServing {base_url}  (Ctrl+C to stop)\n")
        try:
            call_command("runserver", options["addr"], use_reloader=False)
        except KeyboardInterrupt as exc:  # pragma: no cover - interactive
            raise CommandError("stopped") from exc
