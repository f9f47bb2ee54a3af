"""Where uploads are kept while they are read: the staging folder, copying a file in under the size
limit, and reading a Django upload in chunks.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from django.conf import settings

from evalhub.errors import ValidationFailed
from evalhub.suites.parsing import limits
from evalhub.suites.validation import (
    Problem,
)
from evalhub.untrusted import printable


def _staging_dir() -> Path:
    folder = Path(settings.MEDIA_ROOT) / "suite_uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _store(chunks: Iterator[bytes], filename: str) -> tuple[Path, int]:
    """Copy an upload to the staging folder, refusing past the size limit without reading further."""
    lim = limits()
    folder = _staging_dir() / uuid.uuid4().hex
    folder.mkdir()
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(filename).name)[-100:] or "upload"
    target = folder / safe
    try:
        _copy(chunks, target, lim.max_file_bytes, filename)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return target, target.stat().st_size


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
    return file.chunks() if hasattr(file, "chunks") else iter(lambda: file.read(1 << 20), b"")
