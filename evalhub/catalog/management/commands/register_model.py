"""Register a local Hugging Face model folder as a base model."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from evalhub.catalog.services import base_model_register
from evalhub.cli import DomainCommand


class Command(DomainCommand):
    help = "Check a local Hugging Face model folder and register it as a base model."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder")
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--name", required=True)
        parser.add_argument("--as-user", help="Username recorded in the audit trail.")

    def run(self, *args: Any, **options: Any) -> None:
        model = base_model_register(
            project=self.get_project(options["project"]),
            name=options["name"],
            folder=options["folder"],
            actor=self.get_actor(options.get("as_user")),
        )
        self.stdout.write(
            f"Registered base model {model.name} (id {model.pk}, {model.architecture}, "
            f"{model.parameters:,} parameters, weights {model.weights_hash[:12]})"
        )
