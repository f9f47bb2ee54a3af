"""Suite bundles: a promptfoo config with the files it references, uploaded as a folder (the CLI packs
it), a .zip or a .tar.gz.

The archive is checked before anything is unpacked: its size (the upload limit), its file count, its
expansion (the zip-bomb rule shared with XLSX, `parsing.check_expansion`), and its members' names and
kinds (an absolute path, `..` or a link is refused). Then every `file://` reference is resolved inside
the unpacked folder only: an absolute path, `..`, a link or a URL is refused with the reason and the
referring file.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from evalhub.suites.parsing import FileProblem, Limits, Source, check_expansion, limits

CONFIG_NAMES = ("promptfooconfig.yaml", "promptfooconfig.yml")
GLOB_CHARS = set("*?[")
ADVICE = "upload the config with only the files it uses."


def _name_problem(name: str) -> str | None:
    """Why an archive member's (or a reference's) name would reach outside the bundle, or None."""
    if "\\" in name:
        name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "a path that climbs out of the bundle (..)"
    if "://" in name:
        return "a URL"
    if "\x00" in name:
        return "a NUL character"
    return None


# --- checking and unpacking ------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    compressed: int
    is_dir: bool


def _refuse_member(archive_name: str, name: str, reason: str) -> FileProblem:
    return FileProblem(f"{archive_name}: the member {name!r} is {reason}; nothing was unpacked.")


def _zip_members(path: Path, archive_name: str, lim: Limits) -> list[Member]:
    members = []
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if len(infos) > lim.max_bundle_files:
            raise FileProblem(
                f"{archive_name} holds {len(infos):,} files; the limit is {lim.max_bundle_files:,}. {ADVICE}"
            )
        for info in infos:
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise _refuse_member(archive_name, info.filename, "a symbolic link (links are refused)")
            if (reason := _name_problem(info.filename)) is not None:
                raise _refuse_member(archive_name, info.filename, reason)
            members.append(Member(info.filename, info.file_size, info.compress_size, info.is_dir()))
    check_expansion([(m.name, m.size, m.compressed) for m in members], lim, what="bundle", advice=ADVICE)
    return members


def _tar_members(path: Path, archive_name: str, lim: Limits) -> list[Member]:
    """The tar's members, read header by header (no data is written), stopping at the first limit:
    a tar.gz compresses as one stream, so the expansion is checked on the running total."""
    compressed = path.stat().st_size
    members: list[Member] = []
    total = 0
    with tarfile.open(path, mode="r:*") as archive:
        for info in archive:
            if info.issym() or info.islnk():
                raise _refuse_member(
                    archive_name, info.name, f"a link to {info.linkname!r} (links are refused)"
                )
            if not (info.isfile() or info.isdir()):
                raise _refuse_member(archive_name, info.name, "not a regular file or folder")
            if (reason := _name_problem(info.name)) is not None:
                raise _refuse_member(archive_name, info.name, reason)
            members.append(Member(info.name, info.size, 0, info.isdir()))
            total += info.size
            if len(members) > lim.max_bundle_files:
                raise FileProblem(
                    f"{archive_name} holds more than {lim.max_bundle_files:,} files (the limit). {ADVICE}"
                )
            check_expansion([(archive_name, total, compressed)], lim, what="bundle", advice=ADVICE)
    return members


def _unpack(path: Path, archive_name: str, members: list[Member], dest: Path) -> None:
    """Write the checked members under `dest` (never through tarfile/zipfile's own extract)."""
    opener: zipfile.ZipFile | tarfile.TarFile
    is_zip = zipfile.is_zipfile(path)
    with zipfile.ZipFile(path) if is_zip else tarfile.open(path, mode="r:*") as opener:
        for member in members:
            target = dest / PurePosixPath(member.name)
            if member.is_dir:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(opener, zipfile.ZipFile):
                source = opener.open(member.name)
            else:
                extracted = opener.extractfile(member.name)
                if extracted is None:
                    continue
                source = extracted  # type: ignore[assignment]
            with source, target.open("wb") as out:
                # Reads stop at the declared size (zipfile checks it and the CRC), checked above.
                shutil.copyfileobj(source, out, 1024 * 1024)


def unpack(path: Path, *, archive_name: str) -> Path:
    """Check the archive at `path` and unpack it into a new folder (the caller removes it)."""
    lim = limits()
    try:
        if zipfile.is_zipfile(path):
            members = _zip_members(path, archive_name, lim)
        else:
            members = _tar_members(path, archive_name, lim)
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise FileProblem(
            f"{archive_name} is not a readable .zip or .tar.gz archive (it is damaged or truncated)."
        ) from exc
    dest = Path(tempfile.mkdtemp(prefix="evalhub-bundle-"))
    try:
        _unpack(path, archive_name, members, dest)
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise FileProblem(f"{archive_name} could not be unpacked: the archive is damaged ({exc}).") from exc
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest


def pack_folder(folder: Path, dest: Path) -> Path:
    """A folder (the CLI's upload) packed as a .tar.gz under `dest`, so it is checked like any other
    bundle; links are packed as links, and refused by that check."""
    lim = limits()
    for count, _ in enumerate(folder.rglob("*"), start=1):
        if count > lim.max_bundle_files:
            raise FileProblem(
                f"{folder.name} holds more than {lim.max_bundle_files:,} files (the limit). {ADVICE}"
            )
    archive = dest / f"{folder.name or 'bundle'}.tar.gz"
    with tarfile.open(archive, "w:gz") as out:
        for item in sorted(folder.rglob("*")):
            out.add(item, arcname=str(item.relative_to(folder)), recursive=False)
    return archive


# --- references ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """An unpacked bundle: `root` bounds every reference; `base` (the config's folder) is where
    relative references start, as in promptfoo."""

    root: Path
    base: Path

    def read(self, ref: str, *, referrer: str) -> list[tuple[str, bytes]]:
        """(name in the bundle, content) of the files `ref` names; a glob may name several, in order."""
        ref = ref.split("#")[0]
        if (reason := _name_problem(ref)) is not None:
            raise FileProblem(f"the reference file://{ref} is {reason}: references stay inside the bundle.")
        if GLOB_CHARS & set(ref):
            paths = sorted(self.base.glob(ref))
            if not paths:
                raise FileProblem(f"the pattern file://{ref} matches no file in the bundle.")
        else:
            paths = [self.base / ref]
        lim = limits()
        out = []
        for path in paths:
            shown = self._shown(path)
            current = self.root
            for part in path.relative_to(self.root).parts:  # a link anywhere on the way is refused
                current = current / part
                if current.is_symlink():
                    raise FileProblem(
                        f"file://{ref} goes through the link {self._shown(current)!r}: links are refused."
                    )
            if not path.resolve().is_relative_to(self.root.resolve()):
                raise FileProblem(f"file://{ref} is outside the bundle.")
            if not path.is_file():
                if GLOB_CHARS & set(ref) and path.is_dir():
                    continue
                raise FileProblem(f"file://{ref} is missing: the bundle has no file {shown!r}.")
            if path.stat().st_size > lim.max_file_bytes:
                raise FileProblem(f"{shown} is larger than {lim.max_file_bytes / 1e6:,.0f} MB (the limit).")
            out.append((shown, path.read_bytes()))
        return out

    def _shown(self, path: Path) -> str:
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else path.name


def find_config(root: Path, archive_name: str) -> Path:
    """The bundle's promptfoo config: promptfooconfig.yaml at the top (or in its one folder), else
    its only YAML file there."""
    top = root
    entries = [p for p in root.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        top = entries[0]
    for name in CONFIG_NAMES:
        if (top / name).is_file():
            return top / name
    yamls = [p for p in top.iterdir() if p.suffix.lower() in (".yaml", ".yml") and p.is_file()]
    if len(yamls) == 1:
        return yamls[0]
    raise FileProblem(
        f"{archive_name} has no promptfooconfig.yaml at its top"
        + (f" (and {len(yamls)} other YAML files: name the config promptfooconfig.yaml)." if yamls else ".")
    )


def open_bundle(path: Path, *, filename: str, input_var: str = "") -> Source:
    """Unpack and open a bundle: its config's cases stream like a file's rows; closing the Source
    removes the unpacked folder."""
    from evalhub.suites.promptfoo import Fidelity, read_rows_promptfoo

    root = unpack(path, archive_name=filename)
    try:
        config = find_config(root, filename)
        if config.is_symlink():
            raise FileProblem(f"{filename}: the config {config.name} is a link: links are refused.")
        bundle = Bundle(root=root, base=config.parent)
        fidelity = Fidelity()
        handle = config.open("rb")
        name = str(config.relative_to(root))
        rows = read_rows_promptfoo(handle, input_var=input_var, fidelity=fidelity, bundle=bundle, name=name)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return Source(
        "promptfoo",
        [],
        rows,
        handle,
        "utf-8",
        fidelity,
        cleanup=lambda: shutil.rmtree(root, ignore_errors=True),
    )
