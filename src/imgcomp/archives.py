"""Raw archives: safe extraction (zip, RAR4/RAR5, 7z, tar) and downloads with resume + checksum.

Extraction never writes outside its target: absolute paths, `..` components, symlinks and
hard links end in an error, a total-size cap stops decompression bombs, and everything goes
to a temporary folder that is renamed into place only when the whole archive came out.
libarchive reads every format except a *solid* RAR4; for that one an installed `unar`, `7z`
or `unrar` takes over and its output is checked by the same rules.
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

from .errors import UserError
from .fileio import atomic_path

ARCHIVE_SUFFIXES = (".zip", ".rar", ".7z", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
RAR4_MAGIC = b"Rar!\x1a\x07\x00"
_RAR4_SOLID_FLAG = 0x0008
_EXTERNAL_RAR_TOOLS = {
    "unar": lambda a, d: ["unar", "-q", "-f", "-D", "-o", str(d), str(a)],
    "7z": lambda a, d: ["7z", "x", "-y", f"-o{d}", str(a)],
    "unrar": lambda a, d: ["unrar", "x", "-o+", "-idq", str(a), f"{d}/"],
}
CHUNK = 1 << 20


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def safe_member_path(name: str, archive: Path) -> PurePosixPath:
    """The relative path an entry may be written to; an error for anything that escapes."""
    parts = PurePosixPath(name.replace("\\", "/"))
    if parts.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UserError(f"{archive}: entry {name!r} has an absolute path; refusing to extract")
    if ".." in parts.parts:
        raise UserError(f"{archive}: entry {name!r} points outside the target (..); refusing")
    clean = PurePosixPath(*[p for p in parts.parts if p not in ("", ".")])
    if not clean.parts:
        raise UserError(f"{archive}: entry {name!r} has an empty path")
    return clean


def rar4_is_solid(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(7 + 7)
    if not head.startswith(RAR4_MAGIC) or len(head) < 14 or head[9] != 0x73:
        return False
    flags = int.from_bytes(head[10:12], "little")
    return bool(flags & _RAR4_SOLID_FLAG)


def _extract_libarchive(archive: Path, dest: Path, max_bytes: int) -> None:
    import libarchive

    total = 0
    try:
        with libarchive.file_reader(str(archive)) as reader:
            for entry in reader:
                rel = safe_member_path(entry.pathname, archive)
                if entry.issym or entry.islnk:
                    raise UserError(
                        f"{archive}: entry {entry.pathname!r} is a link; refusing to extract links"
                    )
                target = dest / rel
                if entry.isdir:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if not entry.isfile:
                    raise UserError(f"{archive}: entry {entry.pathname!r} is not a regular file")
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as out:
                    for block in entry.get_blocks():
                        total += len(block)
                        if total > max_bytes:
                            raise UserError(
                                f"{archive}: more than {max_bytes / 1e9:.1f} GB unpacked "
                                "(decompression bomb?); raise prepare.max_extract_gb if it is real"
                            )
                        out.write(block)
    except libarchive.ArchiveError as e:
        raise UserError(f"{archive}: cannot read it ({e}); is the file complete? re-download it") from None


def _check_tree(root: Path, archive: Path, max_bytes: int) -> None:
    """Rules for what an external tool wrote: no links, nothing outside, size cap."""
    total = 0
    for p in root.rglob("*"):
        if p.is_symlink():
            raise UserError(f"{archive}: entry {p.relative_to(root)} is a link; refusing")
        if p.is_file():
            total += p.stat().st_size
    if total > max_bytes:
        raise UserError(f"{archive}: more than {max_bytes / 1e9:.1f} GB unpacked; refusing")


def _extract_external(archive: Path, dest: Path, max_bytes: int) -> None:
    for tool, argv in _EXTERNAL_RAR_TOOLS.items():
        if shutil.which(tool):
            # The tool writes into a scratch folder first; only a checked tree moves on.
            with tempfile.TemporaryDirectory(dir=dest.parent) as scratch:
                proc = subprocess.run(argv(archive, scratch), capture_output=True, text=True)
                if proc.returncode != 0:
                    raise UserError(f"{archive}: {tool} failed: {proc.stderr.strip()[:300]}")
                _check_tree(Path(scratch), archive, max_bytes)
                for child in Path(scratch).iterdir():
                    shutil.move(str(child), dest / child.name)
            return
    raise UserError(
        f"{archive}: a solid RAR4 archive, which libarchive cannot read; install one of "
        "unar, 7z or unrar (e.g. `apt-get install unar`) and rerun"
    )


def extract(archive: Path, dest: Path, max_bytes: int, nested: bool = True) -> None:
    """Extract `archive` into the folder `dest` (created atomically; must not exist yet).

    With `nested`, archives found inside are extracted in place (into their own folder's
    parent) and removed, by the same rules: PALM ships a zip inside its zip.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise UserError(f"{archive}: not found")
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        _extract_one(archive, tmp, max_bytes)
        if nested:
            for _ in range(3):
                inner = sorted(p for p in tmp.rglob("*") if p.is_file() and is_archive(p))
                if not inner:
                    break
                for p in inner:
                    _extract_one(p, p.parent, max_bytes)
                    p.unlink()


def _extract_one(archive: Path, dest: Path, max_bytes: int) -> None:
    if archive.name.lower().endswith(".rar") and rar4_is_solid(archive):
        _extract_external(archive, dest, max_bytes)
    else:
        _extract_libarchive(archive, dest, max_bytes)


def sha256sum(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, sha256: str | None) -> None:
    if sha256 and (got := sha256sum(path)) != sha256:
        raise UserError(
            f"{path}: sha256 mismatch (expected {sha256}, got {got}); the file is corrupt or a "
            "different release: delete it and fetch again, or fix the sha256 in params.yaml"
        )


def download(url: str, dest: Path, sha256: str | None = None, retries: int = 5,
             timeout: float = 60.0, progress: bool = True) -> None:
    """Download `url` to `dest`: resumes `dest.part` with HTTP Range, retries, verifies, renames.

    A checksum mismatch deletes the partial file: nothing that looks whole is left behind.
    """
    from tqdm import tqdm

    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"User-Agent": "imgcomp"})
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                if have and resp.status != 206:  # server ignored Range: start over
                    have = 0
                length = resp.headers.get("Content-Length")
                total = have + int(length) if length is not None else None
                with open(part, "ab" if have else "wb") as out, tqdm(
                    total=total, initial=have, unit="B", unit_scale=True, desc=dest.name,
                    disable=not progress, leave=False,
                ) as bar:
                    while chunk := resp.read(CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
                got = part.stat().st_size
                if total is not None and got < total:
                    raise ConnectionError(f"connection closed at {got} of {total} bytes")
            break
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # asked past the end: the part is already complete
                break
            if e.code < 500:
                raise UserError(f"{url}: HTTP {e.code} {e.reason}; check competitions.*.archives url") from None
            last_error = e
        except (OSError, http.client.HTTPException) as e:
            last_error = e
        if attempt < retries:
            time.sleep(min(2 ** attempt, 30) * 0.1)
    else:
        raise UserError(f"{url}: download failed after {retries + 1} tries ({last_error}); "
                        f"rerun to resume from {part}")
    try:
        verify(part, sha256)
    except UserError:
        part.unlink()
        raise
    part.replace(dest)
