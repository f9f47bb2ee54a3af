"""Reading is bounded: hostile resource cases end in a clear problem within a time and memory bound.

Each case is read in the sandbox (the threshold is set to 0 so every read is), which measures the
child's CPU time and its memory above the forked process: the bounds below hold on a busy 2-core
machine with room to spare, against the minutes and gigabytes these files cost before.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from evalhub.errors import ValidationFailed
from evalhub.suites.models import SuiteVersion, Upload
from evalhub.suites.parsing import DecodedReader
from evalhub.suites.services import scan_file, suite_import_file, suite_upload_purge
from tests.data import make_files
from tests.suites.conftest import assert_no_internals, files_under

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_pii_scan")]
MB = 1024 * 1024


@pytest.fixture(autouse=True)
def sandbox_every_read(settings: Any, tmp_path: Path) -> None:
    settings.EVALHUB_SUITE_SANDBOX_BYTES = 0
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EVALHUB_SCRATCH_DIR = tmp_path / "scratch"


# name -> (file name, builder, a phrase of the expected problem, CPU seconds, MB above the fork)
RESOURCE_CASES: dict[str, tuple[str, Callable[[], bytes], str, float, int]] = {
    "blank lines as JSONL": ("blank.jsonl", make_files.blank_lines, "no valid cases", 3, 64),
    "blank lines as YAML": ("blank.yaml", make_files.blank_lines, "needs a list of tests", 3, 64),
    "5M YAML scalars": (
        "scalars.yaml",
        make_files.many_yaml_scalars,
        "more than 1,000,000 values once its aliases are expanded",
        8,
        128,
    ),
    "1.1M shared strings": (
        "strings.xlsx",
        make_files.many_shared_strings,
        "text table holds more than 1,000,000 strings",
        8,
        64,
    ),
    "a case at row 1,000,000": ("sparse.xlsx", make_files.sparse_rows, "goes on past row 200,000", 15, 128),
}


@pytest.mark.parametrize("case", sorted(RESOURCE_CASES))
def test_resource_cases_end_in_a_clear_problem_within_bounds(project: Any, tmp_path: Path, case: str) -> None:
    filename, build, phrase, cpu, memory_mb = RESOURCE_CASES[case]
    path = tmp_path / filename
    path.write_bytes(build())
    report = scan_file(path=path, pii="off")
    messages = " | ".join(p.problem for p in report.problems)
    assert phrase in messages or (phrase == "no valid cases" and report.valid_rows == 0), messages
    assert report.cpu_seconds < cpu, report.cpu_seconds
    assert report.peak_memory_bytes < memory_mb * MB, report.peak_memory_bytes / MB
    with pytest.raises(ValidationFailed) as caught:
        suite_import_file(project=project, name="big", path=path)
    assert_no_internals(str(caught.value), caught.value.fields)
    assert not SuiteVersion.objects.exists()


def test_a_read_past_the_memory_limit_is_a_clear_problem_not_a_crash(
    project: Any, settings: Any, tmp_path: Path
) -> None:
    settings.EVALHUB_SUITE_SCAN_MEMORY_MB = 40
    path = tmp_path / "array.json"
    path.write_text(
        "[" + ",".join(f'{{"input": "case {i}", "tags": [1, 2, 3]}}' for i in range(150_000)) + "]"
    )
    with pytest.raises(ValidationFailed, match="needs more than 40 MB of memory to read"):
        suite_import_file(project=project, name="big", path=path)
    assert not SuiteVersion.objects.exists()


def test_a_read_past_the_cpu_limit_is_a_clear_problem_not_a_timeout(
    api: APIClient, project: Any, settings: Any, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    settings.EVALHUB_SUITE_SCAN_CPU_SECONDS = 1
    path = tmp_path / "scalars.yaml"
    path.write_bytes(make_files.many_yaml_scalars(900_000))
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True), path.open("rb") as handle:
        response = api.post(
            "/api/v1/suites/upload/",
            {"project": project.slug, "name": "big", "file": handle},
            format="multipart",
        )
    # Over the sandbox threshold the upload is read by a task: 202, and the limit hit on its status.
    assert response.status_code == 202, response.json()
    status = api.get(response.json()["url"]).json()
    assert status["status"] == "failed"
    assert "needs more than 1 seconds of computing" in status["error"]["message"]
    # The 1 s CPU limit is what bounds the read (the message proves it was hit); the wall-clock bound
    # only catches a read that escaped it (the unbounded case took 249 s) and leaves room for the
    # sandbox's interpreter start on a loaded 2-core CI machine (38 s was seen at load 10).
    assert time.monotonic() - started < 120
    assert_no_internals(status["error"]["message"], status["error"]["fields"])
    assert files_under(Path(settings.MEDIA_ROOT), Path(settings.EVALHUB_SCRATCH_DIR)) == []


def test_the_cell_count_is_capped_before_reading(project: Any, settings: Any, tmp_path: Path) -> None:
    settings.EVALHUB_SUITE_MAX_XLSX_CELLS = 1000
    path = tmp_path / "cells.xlsx"
    path.write_bytes(make_files.many_cells(600))
    report = scan_file(path=path, pii="off")
    assert "more than 1,000 cells" in report.problems[0].problem
    path.write_bytes(make_files.many_cells(400))
    assert scan_file(path=path, pii="off").valid_rows == 400


def test_the_line_reader_is_linear() -> None:
    import io

    timings = []
    for size in (1 * MB, 4 * MB):
        reader = DecodedReader(io.BytesIO(b"\n" * size))
        started = time.process_time()
        assert sum(1 for _ in reader.lines(1000)) == size
        timings.append(time.process_time() - started)
    assert timings[1] < 8 * timings[0] + 0.5  # 4x the input: about 4x the time, never 16x


def test_the_purge_removes_staged_files_no_upload_points_at(project: Any, settings: Any) -> None:
    staging = Path(settings.MEDIA_ROOT) / "suite_uploads"
    orphan = staging / "0123abcd"
    orphan.mkdir(parents=True)
    (orphan / "cases.csv").write_text("id,input\nc1,personal data\n")
    fresh = staging / "4567ef01"
    fresh.mkdir()
    old = time.time() - 3 * 86400
    os.utime(orphan / "cases.csv", (old, old))
    os.utime(orphan, (old, old))
    scratch = Path(settings.EVALHUB_SCRATCH_DIR)
    crashed, reading = scratch / "upload-0123abcd", scratch / "upload-4567ef01"  # a crash's copy; one in use
    for folder in (crashed, reading):
        folder.mkdir(parents=True)
        (folder / "cases.csv").write_text("id,input\nc1,personal data\n")
    os.utime(crashed, (old, old))
    suite_upload_purge(older_than=timedelta(hours=24))
    assert not orphan.exists() and fresh.exists()  # a folder younger than the cutoff may be in use
    assert not crashed.exists() and reading.exists()
    assert not Upload.objects.exists()
