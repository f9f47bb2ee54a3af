"""QLoRA adapters: the catalogue records the quantisation their base was trained in, and a run
records the precision it evaluated the base in, next to it where they differ (and shows it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from django.test import Client

from evalhub.catalog.services import adapter_register
from evalhub.errors import ValidationFailed
from evalhub.runs.models import RunStatus
from evalhub.runs.services import run_create, run_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_completion_hooks")]


def _qlora_copy(source: Path, folder: Path, provenance: dict) -> Path:
    shutil.copytree(source, folder)
    (folder / "evalhub.json").write_text(json.dumps(provenance))
    return folder


def test_an_nf4_adapter_evaluated_on_the_plain_base_says_so_in_the_run(
    project, tiny, tiny_folders, suite_version, engineer, tmp_path: Path
) -> None:
    folder = _qlora_copy(tiny_folders["alpha"], tmp_path / "qlora", {"base_quantization": "NF4"})
    qlora = adapter_register(
        project=project, base_model=tiny["base"], folder=str(folder), name="q", version="1"
    )
    assert qlora.base_quantization == "nf4"
    assert tiny["alpha"].base_quantization == "none"

    run = run_create(
        project=project,
        suite_version=suite_version,
        base_model=tiny["base"],
        adapters=[qlora, tiny["alpha"]],
        generation_config={"max_new_tokens": 3},
    )
    run_start(run=run)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    precision = {
        ra.adapter.name: ra.sanity["base_precision"] for ra in run.run_adapters.select_related("adapter")
    }
    # EVALHUB_DEVICE=cpu in the tests: float32, no bitsandbytes.
    assert precision == {"q": "fp32 (adapter trained on nf4)", "alpha": "fp32"}

    client = Client()
    client.force_login(engineer)
    page = client.get(f"/p/{project.slug}/runs/{run.pk}/").content.decode()
    assert "Base evaluated in" in page and "fp32 (adapter trained on nf4)" in page


def test_an_unknown_base_quantization_is_refused_naming_the_choices(project, tiny, tiny_folders, tmp_path):
    folder = _qlora_copy(tiny_folders["alpha"], tmp_path / "odd", {"base_quantization": "int3"})
    with pytest.raises(ValidationFailed, match="base quantization 'int3' is not one of none, nf4, fp4, int8"):
        adapter_register(
            project=project, base_model=tiny["base"], folder=str(folder), name="odd", version="1"
        )
