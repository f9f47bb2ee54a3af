"""`manage.py purge_suite_uploads`: discard staged uploads left unconfirmed (schedule it daily)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from evalhub.suites.services import suite_upload_purge


class Command(BaseCommand):
    help = "Discard staged suite uploads older than --hours (default 24) and delete their files."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--hours", type=float, default=24.0)

    def handle(self, *args: Any, **options: Any) -> None:
        count = suite_upload_purge(older_than=timedelta(hours=options["hours"]))
        self.stdout.write(f"Discarded {count} staged upload(s).")
