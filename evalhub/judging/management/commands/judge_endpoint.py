"""Configure a project's HTTP judge endpoints: set (create or replace), list, delete.

The API key is never taken on the command line (it would sit in the shell history and in `ps`): it is
read from an environment variable named by --api-key-env, or from the first line of stdin with
--api-key-stdin. Nothing prints it back.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from evalhub.cli import DomainCommand
from evalhub.judging.endpoints import endpoint_delete, endpoint_describe, endpoint_get, endpoint_save
from evalhub.judging.models import JudgeApi, JudgeEndpoint


class Command(DomainCommand):
    help = "Set, list or delete a project's OpenAI-compatible HTTP judge endpoints."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        put = sub.add_parser("set", help="Create or replace an endpoint.")
        put.add_argument("name")
        put.add_argument("--project", required=True, help="Project slug.")
        put.add_argument("--base-url", required=True, help="http(s)://host[:port], with or without /v1.")
        put.add_argument("--model", required=True, help="The model name the server serves.")
        put.add_argument("--api", choices=JudgeApi.values, default=JudgeApi.CHAT)
        put.add_argument("--timeout", type=float, default=30.0, help="Seconds per request.")
        put.add_argument("--concurrency", type=int, default=4, help="Requests in flight at most.")
        put.add_argument("--max-retries", type=int, default=3)
        put.add_argument(
            "--constrained", action="store_true", help="vLLM: constrain answers to the allowed words."
        )
        keys = put.add_mutually_exclusive_group()
        keys.add_argument(
            "--api-key-env", metavar="VAR", help="Read the API key from this environment variable."
        )
        keys.add_argument(
            "--api-key-stdin", action="store_true", help="Read the API key from stdin's first line."
        )
        keys.add_argument("--clear-api-key", action="store_true", help="Remove the stored key.")
        put.add_argument("--as-user", help="Username recorded in the audit trail.")
        listing = sub.add_parser("list", help="The project's endpoints (keys are never shown).")
        listing.add_argument("--project", required=True)
        delete = sub.add_parser("delete", help="Remove an endpoint.")
        delete.add_argument("name")
        delete.add_argument("--project", required=True)
        delete.add_argument("--as-user")

    def _api_key(self, options: dict[str, Any]) -> dict[str, Any]:
        if options["clear_api_key"]:
            return {"api_key": ""}
        if options["api_key_env"]:
            value = os.environ.get(options["api_key_env"])
            if value is None:
                raise CommandError(f"The environment variable {options['api_key_env']} is not set.")
            return {"api_key": value}
        if options["api_key_stdin"]:
            return {"api_key": sys.stdin.readline().strip()}
        return {}

    def run(self, *args: Any, **options: Any) -> None:
        project = self.get_project(options["project"])
        if options["action"] == "list":
            for endpoint in JudgeEndpoint.objects.filter(project=project).order_by("name"):
                d = endpoint_describe(endpoint)
                self.stdout.write(
                    f"{d['name']}: {d['model']} at {d['base_url']} ({d['api']}), key {'set' if d['api_key_set'] else 'not set'}, "
                    f"timeout {d['timeout_seconds']:g} s, concurrency {d['concurrency']}, retries {d['max_retries']}"
                    + (", constrained" if d["constrained"] else "")
                )
            return
        actor = self.get_actor(options.get("as_user"))
        if options["action"] == "delete":
            endpoint_delete(endpoint=endpoint_get(project=project, name=options["name"]), actor=actor)
            self.stdout.write(f"Deleted judge endpoint {options['name']}.")
            return
        endpoint = endpoint_save(
            project=project, actor=actor, name=options["name"], base_url=options["base_url"], model=options["model"],
            api=options["api"], timeout_seconds=options["timeout"], concurrency=options["concurrency"],
            max_retries=options["max_retries"], constrained=options["constrained"], **self._api_key(options),
        )  # fmt: skip
        key = "set" if endpoint.api_key else "not set"
        self.stdout.write(
            f"Saved judge endpoint {endpoint.name} ({endpoint.model} at {endpoint.base_url}); key {key}."
        )
