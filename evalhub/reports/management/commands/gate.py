"""`manage.py gate <run>`: print a run's go/no-go verdict and each gate, for CI pipelines.

Exit status: 0 GO, 1 NO-GO, 2 INCONCLUSIVE; 3 for a usage or domain error (unknown run, adapter or
policy). A pipeline can treat anything but 0 as "do not ship".
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from evalhub.cli import DomainCommand, format_domain_error
from evalhub.errors import DomainError
from evalhub.reports import gates, selectors, services
from evalhub.runs.models import Run

EXIT = {"GO": 0, "NO-GO": 1, "INCONCLUSIVE": 2}
EXIT_ERROR = 3


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


class Command(DomainCommand):
    help = "Print a run's go/no-go verdict and its gates. Exit 0 GO, 1 NO-GO, 2 INCONCLUSIVE, 3 error."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run", type=int, help="Run id")
        parser.add_argument("--candidate", help="name@version (default: the run's first candidate)")
        parser.add_argument("--baseline", help="name@version (default: the run's baseline)")
        parser.add_argument(
            "--policy", help="gate policy name in the run's project (default: newest, else built-in)"
        )
        parser.add_argument(
            "--exclude-below", type=float, help="exclude raters with gold accuracy below this"
        )
        parser.add_argument(
            "--exclude-flagged",
            action="store_true",
            help="leave out the raters the rater-quality checks flag (as the report page's re-run does)",
        )
        # A string, checked by the report's own rule (services.rater_quality_params): a bad value is a
        # domain error (exit 3), never argparse's exit 2, which would read as INCONCLUSIVE.
        parser.add_argument(
            "--min-seconds", help="a rating faster than this many seconds counts as too fast (default 5)"
        )
        parser.add_argument("--freeze", action="store_true", help="freeze the verdict (snapshot + hash)")
        parser.add_argument("--user", help="username recorded as the one who froze it")
        parser.add_argument("--json", action="store_true", help="print the verdict as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            decision = self.decide(**options)
        except (DomainError, CommandError) as exc:
            message = format_domain_error(exc) if isinstance(exc, DomainError) else str(exc)
            self.stderr.write(message)
            sys.exit(EXIT_ERROR)
        sys.exit(EXIT[decision])

    def decide(self, **options: Any) -> str:
        run = Run.objects.filter(pk=options["run"]).select_related("project").first()
        if run is None:
            raise CommandError(f"No run {options['run']}.")
        params: dict[str, Any] = services.rater_quality_params(
            exclude_flagged=True if options.get("exclude_flagged") else None,
            min_seconds=options.get("min_seconds"),
        )
        for role in ("candidate", "baseline"):
            if options.get(role):
                params[role] = selectors.adapter_in_run(run=run, label=options[role])
        if options.get("exclude_below") is not None:
            params["exclude_raters_below"] = options["exclude_below"]
        policy = selectors.policy_for_run(run=run, name=options.get("policy"))
        public_id = None
        if options["freeze"]:
            verdict = services.verdict_freeze(
                run=run, policy=policy, actor=self.get_actor(options.get("user")), **params
            )
            decision, results = verdict.decision, verdict.gates
            cand: str | None = verdict.candidate.label
            base = verdict.baseline.label if verdict.baseline else None
            public_id = verdict.public_id
        else:
            report = services.report_build(run=run, **params)
            outcome = services.report_with_verdict(
                report=report, policy=policy.parsed if policy else gates.default_policy()
            )
            decision, results = outcome["decision"], outcome["gates"]
            cand, base = report.candidate_label, report.baseline_label
        if options["json"]:
            body = {
                "run": run.pk,
                "candidate": cand,
                "baseline": base,
                "policy": policy.name if policy else "default",
                "decision": decision,
                "verdict": public_id,
                "gates": results,
            }
            self.stdout.write(json.dumps(body, indent=1, default=str))
            return decision
        self.stdout.write(
            f"{decision}: {cand} vs {base} on run {run.pk} "
            f"(policy {policy.name if policy else 'default'}{', verdict ' + public_id if public_id else ''})"
        )
        for g in gates.gates_explained(decision, list(results)):
            ci = f" [{_fmt(g['ci_low'])}, {_fmt(g['ci_high'])}]" if g.get("ci_low") is not None else ""
            extra = f" - {g['reason']}" if g.get("reason") else ""
            if g["evidence"] and g["evidence"].get("additional_n"):
                likely = f" ({g['needed_range']})" if g["needed_range"] else ""
                extra += f"; {g['needed_text']} more would decide it{likely}"
            self.stdout.write(
                f"  {g['status'].upper():8} {g['name']}: {g['metric']} = {_fmt(g['value'])}{ci} {g['op']} {g['threshold']}"
                f" (else {g['on_fail']}){extra}"
            )
        return decision
