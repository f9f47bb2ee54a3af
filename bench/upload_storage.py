"""Upload storage benchmark: what keeping an upload through Django's storage API costs.

For a CSV of each size, times (median of --rounds, fresh folders each round, same run):
  baseline  the old store: the upload's chunks copied straight into a MEDIA_ROOT folder
  local     the new default: received into the scratch folder, then kept in FileSystemStorage
            (moved into MEDIA_ROOT: a rename on one file system), and its local copy (the file itself)
  memory    kept in InMemoryStorage (standing in for S3), then a local copy streamed back to scratch
and prints each as a ratio to the baseline. No parsing, no database: the storage step alone.

    .venv/bin/python bench/upload_storage.py [--sizes 10,100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
MB = 1024 * 1024


def chunks_of(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from iter(lambda: handle.read(64 * 1024), b"")  # Django's upload chunk size


def median_seconds(run: Callable[[], None], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10,100", help="CSV sizes in MB")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalhub.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.files.storage import storages
    from django.test.utils import override_settings

    from evalhub.suites.services.storage import _copy, keep, local_copy, receive

    settings.EVALHUB_SUITE_MAX_FILE_BYTES = 1 << 40
    with tempfile.TemporaryDirectory(prefix="evalhub-bench-storage-") as root:
        base = Path(root)
        settings.MEDIA_ROOT = base / "media"
        settings.EVALHUB_SCRATCH_DIR = base / "scratch"
        print("| size | baseline s (old store) | local s (ratio) | in-memory s (ratio) |")
        print("|---:|---:|---:|---:|")
        for size in (int(s) for s in args.sizes.split(",")):
            source = base / f"cases-{size}.csv"
            row = b'c,"Summarise: revenue rose 5% to $10 million.","Revenue up 5%."\n'
            with source.open("wb") as out:
                out.write(b"id,input,reference\n")
                out.write(row * (size * MB // len(row)))

            def baseline() -> None:
                folder = Path(settings.MEDIA_ROOT) / "suite_uploads" / os.urandom(8).hex()
                folder.mkdir(parents=True)
                _copy(chunks_of(source), folder / "cases.csv", 1 << 40, "cases.csv")  # noqa: B023
                shutil.rmtree(folder)

            def kept() -> None:
                name = keep(receive(chunks_of(source), "cases.csv"))  # noqa: B023
                with local_copy(name) as local:
                    assert local.path.stat().st_size == source.stat().st_size  # noqa: B023
                storages["default"].delete(name)

            old = median_seconds(baseline, args.rounds)
            local = median_seconds(kept, args.rounds)
            with override_settings(
                STORAGES={"default": {"BACKEND": "django.core.files.storage.InMemoryStorage"}}
            ):
                memory = median_seconds(kept, args.rounds)
            print(
                f"| {size} MB | {old:.3f} | {local:.3f} ({local / old:.2f}x) | {memory:.3f} ({memory / old:.2f}x) |"
            )
            source.unlink()


if __name__ == "__main__":
    main()
