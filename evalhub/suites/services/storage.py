"""Where uploads are kept while they are read.

A received file is copied under the size limit into a local scratch folder (`receive`), read from
there, and kept, when a later step needs it (a staged preview, a queued read or import), in Django's
default storage (`keep`): STORAGES["default"], a folder under MEDIA_ROOT unless configured, or
S3-compatible storage through django-storages (docs/operations.md#file-storage). Web processes and
workers share the storage; each has its own scratch folder. A step that reads a kept file takes a
local copy (`local_copy`): the file itself under a FileSystemStorage, else a bounded download into
the scratch folder, removed afterwards, because the parsers (and the sandboxed read) need a path.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, default_storage

from evalhub.errors import ValidationFailed
from evalhub.suites.parsing import limits
from evalhub.suites.validation import (
    Problem,
)
from evalhub.untrusted import printable

STAGING = "suite_uploads"  # the kept files' folder in the storage, one folder per upload
FINDINGS = "pii#findings.jsonl"  # the PII spans found in a kept file, beside it ("#" is never in _safe_name)
CHUNK = 1 << 20


def upload_storage() -> Storage:
    """The storage kept uploads live in (read at call time, so override_settings(STORAGES) applies)."""
    return default_storage


def scratch_dir() -> Path:
    """This machine's folder for received files, local copies and spools (EVALHUB_SCRATCH_DIR)."""
    folder = Path(
        getattr(settings, "EVALHUB_SCRATCH_DIR", "") or Path(tempfile.gettempdir()) / "evalhub-scratch"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def scratch_folder(prefix: str) -> Iterator[Path]:
    """A new folder under `scratch_dir()`, removed with what it holds on leaving."""
    folder = scratch_dir() / f"{prefix}{uuid.uuid4().hex}"
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Received:
    """A file copied into its own scratch folder; `remove()` deletes the folder (and PII findings
    recorded beside the file) once it is read or kept."""

    path: Path
    size: int

    @property
    def findings(self) -> Path:
        return self.path.parent / FINDINGS

    def remove(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)


def receive(chunks: Iterator[bytes], filename: str) -> Received:
    """Copy an upload to a scratch folder, refusing past the size limit without reading further."""
    folder = scratch_dir() / f"upload-{uuid.uuid4().hex}"
    folder.mkdir()
    target = folder / _safe_name(filename)
    try:
        _copy(chunks, target, limits().max_file_bytes, filename)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Received(target, target.stat().st_size)


def _safe_name(filename: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(filename).name)[-100:] or "upload"


def _copy(chunks: Iterator[bytes], target: Path, max_bytes: int, filename: str) -> None:
    size = 0
    with target.open("wb") as out:
        for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise ValidationFailed(
                    f"{printable(filename)}: the file is larger than {max_bytes / 1e6:,.0f} MB (the limit).",
                    fields={
                        "rows": [
                            Problem(None, "", f"file larger than {max_bytes:,} bytes", fatal=True).to_dict()
                        ]
                    },
                )
            out.write(chunk)


def _file_chunks(file: IO[bytes] | Any) -> Iterator[bytes]:
    """A Django upload's chunks, or 1 MiB reads of a plain binary file."""
    return file.chunks() if hasattr(file, "chunks") else iter(lambda: file.read(CHUNK), b"")


class _Movable(File):
    """A scratch file FileSystemStorage may move into place instead of copying (the interface of
    Django's TemporaryUploadedFile); other storages read it in chunks."""

    def temporary_file_path(self) -> str:
        return str(self.name)


def keep(received: Received) -> str:
    """Save a received file (and the PII findings recorded beside it) to the storage, in a new
    folder of its own; returns the file's storage name (an Upload's `path`). The scratch copy goes."""
    storage = upload_storage()
    folder = f"{STAGING}/{uuid.uuid4().hex}"
    try:
        name = _save(storage, f"{folder}/{received.path.name}", received.path)
        if received.findings.is_file():
            _save(storage, f"{folder}/{FINDINGS}", received.findings)
    except BaseException:
        delete_kept(f"{folder}/{received.path.name}")
        raise
    finally:
        received.remove()
    return name


def _save(storage: Storage, name: str, source: Path) -> str:
    with source.open("rb") as handle:
        saved = storage.save(name, _Movable(handle, name=str(source)))
    if saved != name:  # the folder is new: another name means a clash we must not hide
        storage.delete(saved)
        raise RuntimeError(f"the storage saved {name} as {saved}")
    return saved


def findings_name(name: str) -> str:
    """The storage name of the PII findings kept beside the kept file `name`."""
    return f"{name.rsplit('/', 1)[0]}/{FINDINGS}" if "/" in name else FINDINGS


def is_kept(name: str) -> bool:
    return bool(name) and upload_storage().exists(name)


@dataclass
class LocalCopy:
    """A kept file's local path, and where PII findings for it are read and recorded."""

    path: Path
    findings: Path


@contextlib.contextmanager
def local_copy(name: str, *, record_findings: bool = False) -> Iterator[LocalCopy]:
    """A local path to the kept file `name` (and its PII findings, if any) for a reader that needs one.

    Under a FileSystemStorage it is the kept file itself. Otherwise both are streamed into a scratch
    folder in chunks (the file bounded by the upload size limit), removed on leaving; with
    `record_findings`, findings written there are saved back beside the kept file on success.
    """
    storage = upload_storage()
    if isinstance(storage, FileSystemStorage):
        path = Path(storage.path(name))
        yield LocalCopy(path, path.parent / FINDINGS)
        return
    with scratch_folder("copy-") as folder:
        local = LocalCopy(folder / _safe_name(name), folder / FINDINGS)
        _download(storage, name, local.path, limits().max_file_bytes)
        if storage.exists(findings_name(name)):
            # The spans of at most the whole file: bounded by a multiple of its size.
            _download(storage, findings_name(name), local.findings, 64 * limits().max_file_bytes)
        yield local
        if record_findings and local.findings.is_file():
            storage.delete(findings_name(name))
            _save(storage, findings_name(name), local.findings)


def _download(storage: Storage, name: str, target: Path, max_bytes: int) -> None:
    with storage.open(name, "rb") as source:
        _copy(source.chunks(CHUNK), target, max_bytes, Path(name).name)


def delete_kept(name: str) -> None:
    """Delete a kept file with everything in its folder (its PII findings), and the folder."""
    if not name:
        return
    folder = name.rsplit("/", 1)[0] if "/" in name else ""
    storage = upload_storage()
    if not folder.startswith(f"{STAGING}/"):  # a single file (never expected), never the staging root
        storage.delete(name)
        return
    _delete_tree(storage, folder)


def _delete_tree(storage: Storage, folder: str) -> None:
    try:
        folders, files = storage.listdir(folder)
    except FileNotFoundError:
        return
    for sub in folders:
        _delete_tree(storage, f"{folder}/{sub}")
    for file in files:
        storage.delete(f"{folder}/{file}")
    if isinstance(storage, FileSystemStorage):  # other storages have no folders, only names
        storage.delete(folder)


def purge_kept(*, before: datetime, live: set[str]) -> int:
    """Delete the storage's upload folders whose newest file is older than `before` and whose name
    is not in `live` (left behind by a crash). Returns how many were deleted."""
    storage = upload_storage()
    try:
        folders, files = storage.listdir(STAGING)
    except FileNotFoundError:
        return 0
    removed = 0
    for sub in folders:
        folder = f"{STAGING}/{sub}"
        if sub in live or _newest(storage, folder) >= before:
            continue
        _delete_tree(storage, folder)
        removed += 1
    for file in files:
        if storage.get_modified_time(f"{STAGING}/{file}") < before:
            storage.delete(f"{STAGING}/{file}")
            removed += 1
    return removed


def _newest(storage: Storage, folder: str) -> datetime:
    folders, files = storage.listdir(folder)
    times = [storage.get_modified_time(f"{folder}/{file}") for file in files]
    times += [_newest(storage, f"{folder}/{sub}") for sub in folders]
    if not times and isinstance(storage, FileSystemStorage):
        times = [storage.get_modified_time(folder)]  # an empty folder: when it was made
    return max(times, default=datetime.min.replace(tzinfo=UTC))


def purge_scratch(*, before: float) -> int:
    """Delete entries of this machine's scratch folder last changed before `before` (a timestamp):
    received files, copies and spools a crash left behind. Returns how many were deleted."""
    removed = 0
    for entry in scratch_dir().iterdir():
        try:
            if entry.stat().st_mtime >= before:
                continue
        except FileNotFoundError:
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed
