"""The storage tests of test_upload_storage.py again, with django-storages' S3Storage (against an S3
API served by moto) as the default storage. Both are optional installs, not evalhub dependencies:
skipped unless `pip install 'django-storages[s3]' 'moto[server]'` was run in the environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("storages.backends.s3")
moto_server = pytest.importorskip("moto.server")

import boto3  # noqa: E402  (installed with django-storages[s3])
from django.core.files.storage import storages  # noqa: E402

# The same tests, collected here, where this module's `in_memory` fixture gives them S3Storage.
from tests.suites.test_upload_storage import (  # noqa: E402, F401
    test_a_kept_file_is_copied_locally_under_the_size_limit,
    test_a_staged_file_gone_from_the_storage_is_a_clear_conflict,
    test_an_expired_staged_upload_is_purged_from_the_storage,
    test_api_dry_run_read_by_a_task_in_the_sandbox,
    test_api_upload_imported_at_once_never_touches_the_storage,
    test_api_upload_queued_is_kept_then_imported_by_the_task,
    test_pii_findings_are_kept_beside_the_file_and_reused_at_import,
    test_the_purge_keeps_a_queued_upload_and_removes_orphans,
    test_web_discard_deletes_the_staged_file_from_the_storage,
    test_web_upload_preview_remap_and_confirm,
    test_web_upload_read_by_a_task_then_queued_import,
    web,
)

pytestmark = pytest.mark.django_db
BUCKET = "evalhub-uploads"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    s3.create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def in_memory(settings: Any, tmp_path: Path, s3_endpoint: str) -> Path:
    """S3Storage as the default storage (replaces the InMemoryStorage fixture of the tests imported)."""
    from storages.backends.s3 import S3Storage

    options = {
        "bucket_name": BUCKET,
        "endpoint_url": s3_endpoint,
        "region_name": "us-east-1",
        "access_key": "k",
        "secret_key": "s",
        "location": f"media-{tmp_path.name}",  # each test its own prefix
    }
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
    }
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EVALHUB_SCRATCH_DIR = tmp_path / "scratch"
    settings.EVALHUB_SUITE_PII_SCAN = False
    assert isinstance(storages["default"], S3Storage)
    return Path(settings.MEDIA_ROOT)
