"""manage.py run_eval: a run started from the command line, followed with a progress bar."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from evalhub.runs.models import Output, Run, RunStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_completion_hooks")]


def run_eval(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("run_eval", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_run_eval_runs_in_process_with_a_progress_bar(project, tiny, suite_version, settings):
    settings.EVALHUB_GENERATION_CHUNK_SIZE = 4
    out, err = run_eval(
        "--project", project.slug, "--suite", "tiny-suite", "--base-model", "tiny-base",
        "--adapter", "alpha@1", "--baseline", "beta@1", "--max-new-tokens", "5", "--seed", "3",
    )
    run = Run.objects.get()
    assert run.status == RunStatus.COMPLETED
    assert Output.objects.filter(run=run).count() == 12
    assert f"Run {run.pk} completed: 12/12 outputs (0 reused" in out
    assert "12/12" in err and "run 1" in err.replace(f"run {run.pk}", "run 1")  # the tqdm bar

    out, _ = run_eval(
        "--project", project.slug, "--suite", "tiny-suite", "--version", "1", "--base-model", "tiny-base",
        "--adapter", "alpha@1", "--baseline", "beta@1", "--max-new-tokens", "5", "--seed", "3",
    )
    assert "(12 reused" in out
    out, _ = run_eval(
        "--project", project.slug, "--suite", "tiny-suite", "--base-model", "tiny-base",
        "--adapter", "alpha@1", "--max-new-tokens", "5", "--force",
    )
    assert "forced regeneration" in out and "(0 reused" in out


def test_run_eval_cancel_and_resume(project, tiny, suite_version):
    from evalhub.runs.services import run_create

    run = run_create(project=project, suite_version=suite_version, base_model=tiny["base"],
                     adapters=[tiny["alpha"]], generation_config={"max_new_tokens": 4})
    out, _ = run_eval("--cancel", str(run.pk))
    assert f"Cancelled run {run.pk}" in out
    out, _ = run_eval("--resume", str(run.pk))
    assert f"Run {run.pk} completed: 6/6 outputs" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--suite", "tiny-suite", "--base-model", "tiny-base", "--adapter", "alpha@1"], "--project is required"),
        (["--project", "acme-summaries", "--suite", "nope", "--base-model", "tiny-base", "--adapter", "alpha@1"],
         "No suite 'nope'"),
        (["--project", "acme-summaries", "--suite", "tiny-suite", "--base-model", "tiny-base",
          "--adapter", "ghost@3"], "No adapter 'ghost@3'"),
        (["--project", "acme-summaries", "--suite", "tiny-suite", "--base-model", "tiny-base",
          "--adapter", "alpha@1", "--temperature", "-1"], "temperature must be >= 0"),
        (["--project", "acme-summaries", "--suite", "tiny-suite", "--base-model", "tiny-base",
          "--adapter", "zero@1"], "zero@1.*changes nothing"),
        (["--resume", "999"], "No run with id 999"),
    ],
)
def test_bad_input_exits_non_zero_with_a_message(project, tiny, suite_version, args, message):
    assert project.slug == "acme-summaries"
    with pytest.raises(CommandError, match=message):
        run_eval(*args)
