"""Register a PEFT LoRA adapter folder on a base model."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from evalhub.catalog.models import BaseModel
from evalhub.catalog.selectors import adapter_by_label
from evalhub.catalog.services import adapter_register
from evalhub.cli import DomainCommand


class Command(DomainCommand):
    help = "Check a PEFT adapter folder against its base model and register it (values default to its evalhub.json)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder")
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--base-model", required=True, help="Name of a registered base model.")
        parser.add_argument("--name")
        parser.add_argument("--adapter-version", "--version-label", dest="adapter_version", help="Version label, e.g. 3.")
        parser.add_argument("--parent", help="name@version of the adapter this one was trained from.")
        parser.add_argument("--stage")
        parser.add_argument("--train-examples", type=int)
        parser.add_argument("--synthetic-share", type=float)
        parser.add_argument("--data-source")
        parser.add_argument("--consent-reference")
        parser.add_argument("--as-user", help="Username recorded in the audit trail.")

    def run(self, *args: Any, **options: Any) -> None:
        project = self.get_project(options["project"])
        base_model = BaseModel.objects.filter(project=project, name=options["base_model"]).first()
        if base_model is None:
            raise CommandError(f"No base model named {options['base_model']!r} in {project.slug}.")
        parent = None
        if options.get("parent"):
            parent = adapter_by_label(project=project, label=options["parent"])
            if parent is None:
                raise CommandError(f"No adapter {options['parent']!r} in {project.slug}.")
        adapter = adapter_register(
            project=project,
            base_model=base_model,
            folder=options["folder"],
            name=options.get("name"),
            version=options.get("adapter_version"),
            parent=parent,
            stage=options.get("stage"),
            train_examples=options.get("train_examples"),
            synthetic_share=options.get("synthetic_share"),
            data_source=options.get("data_source"),
            consent_reference=options.get("consent_reference"),
            actor=self.get_actor(options.get("as_user")),
        )
        lineage = f", parent {adapter.parent.label}" if adapter.parent else ""
        self.stdout.write(
            f"Registered adapter {adapter.label} (id {adapter.pk}, LoRA r={adapter.rank}, "
            f"stage {adapter.stage or '-'}{lineage}, weights {adapter.weights_hash[:12]})"
        )
