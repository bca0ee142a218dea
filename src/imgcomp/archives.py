"""Raw archives: safe extraction (zip, RAR4/RAR5, 7z, tar) and downloads with resume + checksum.

Extraction never writes outside its target: absolute paths, `..` components, symlinks and
hard links end in an error, a total-size cap stops decompression bombs, and everything goes
to a temporary folder that is renamed into place only when the whole archive came out.
libarchive reads every format except a *solid* RAR4; for that one an installed `unrar`, `unar`
or `7z` takes over (in that order, the next when one fails) and its output is checked by the
same rules.

What is not data (`not_data`: macOS's `__MACOSX/` trees and AppleDouble `._*` twins,
`.DS_Store`, `Thumbs.db`, `desktop.ini`, other dot-files) is never written, in every format
and at every nesting level, so no listing of images, nested archives or label sheets can
trip over it; extraction counts what it skipped. "Re-download it" is said only of an archive
that is itself damaged; a nested file that cannot be read is named by its path inside.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Iterator

from .errors import UserError
from .fileio import atomic_path

ARCHIVE_SUFFIXES = (".zip", ".rar", ".7z", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
RAR4_MAGIC = b"Rar!\x1a\x07\x00"
_RAR4_SOLID_FLAG = 0x0008
# Tools that read RAR4 first: Debian's 7z (p7zip without the RAR codec) cannot.
_EXTERNAL_RAR_TOOLS = {
    "unrar": lambda a, d: ["unrar", "x", "-o+", "-idq", str(a), f"{d}/"],
    "unar": lambda a, d: ["unar", "-q", "-f", "-D", "-o", str(d), str(a)],
    "7z": lambda a, d: ["7z", "x", "-y", f"-o{d}", str(a)],
}
CHUNK = 1 << 20
DESKTOP_FILES = {".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"}
_TRUNCATED = re.compile(r"truncat|unexpected end|more data than|premature|damaged|corrupt|crc",
                        re.IGNORECASE)


def not_data(rel: str | PurePosixPath) -> bool:
    """The one rule for desktop junk: True for what a desktop adds and no organiser ships."""
    parts = str(rel).replace("\\", "/").split("/")
    return any(p == "__MACOSX" or (p.startswith(".") and p not in (".", ".."))
               or p.lower() in DESKTOP_FILES for p in parts if p)


@contextmanager
def _libarchive_warnings() -> Iterator[list[str]]:
    """Collect libarchive's warnings instead of letting them reach stderr: a zip entry whose
    CRC fails is only a warning there, and its corrupt bytes would be written silently."""
    logger = logging.getLogger("libarchive")
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def clean_error(e: BaseException) -> str:
    """libarchive's message without its errno/retcode/pointer suffix."""
    text = re.sub(r"\s*\((?:errno|retcode|archive_p)=[^)]*\)", "", str(e)).strip()
    return re.sub(r"\s+", " ", text) or type(e).__name__


def is_archive(path: Path | str) -> bool:
    return str(path).rpartition("/")[2].lower().endswith(ARCHIVE_SUFFIXES)


def safe_member_name(name: str, archive: Path) -> str:
    """The relative posix path an entry may be written to; an error for anything that escapes."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UserError(f"{archive}: entry {name!r} has an absolute path; refusing to extract")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise UserError(f"{archive}: entry {name!r} points outside the target (..); refusing")
    clean = "/".join(p for p in parts if p not in ("", "."))
    if not clean:
        raise UserError(f"{archive}: entry {name!r} has an empty path")
    return clean


def safe_member_path(name: str, archive: Path) -> PurePosixPath:
    return PurePosixPath(safe_member_name(name, archive))


def rar4_is_solid(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(7 + 7)
    if not head.startswith(RAR4_MAGIC) or len(head) < 14 or head[9] != 0x73:
        return False
    flags = int.from_bytes(head[10:12], "little")
    return bool(flags & _RAR4_SOLID_FLAG)


def _extract_libarchive(archive: Path, dest: Path, max_bytes: int, shown: str,
                        outer: Path | None = None) -> int:
    """Extract with libarchive; returns the number of not-data entries skipped. `shown` is how
    errors name the archive: its path, or (nested) its path inside `outer`."""
    import libarchive

    total, skipped, current = 0, 0, None
    try:
        with _libarchive_warnings() as warnings, libarchive.file_reader(str(archive)) as reader:
            for entry in reader:
                current = entry.pathname
                rel = safe_member_path(entry.pathname, archive)
                if not_data(rel):
                    skipped += 0 if entry.isdir else 1
                    continue
                if entry.issym or entry.islnk:
                    raise UserError(
                        f"{shown}: entry {entry.pathname!r} is a link; refusing to extract links"
                    )
                target = dest / rel
                if entry.isdir:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if not entry.isfile:
                    raise UserError(f"{shown}: entry {entry.pathname!r} is not a regular file")
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as out:
                    for block in entry.get_blocks():
                        total += len(block)
                        if total > max_bytes:
                            raise UserError(
                                f"{shown}: more than {max_bytes / 1e9:.1f} GB unpacked "
                                "(decompression bomb?); raise prepare.max_extract_gb if it is real"
                            )
                        out.write(block)
                if bad := [w for w in warnings if re.search(r"crc|checksum", w, re.I)]:
                    raise libarchive.ArchiveError(bad[0])  # a failed CRC: damaged data
                warnings.clear()
                current = None
    except libarchive.ArchiveError as e:
        why = clean_error(e)
        source = outer.name if outer else "it"
        if current is not None:  # the archive opened, then broke inside an entry: damaged
            raise UserError(f"{shown}: {current} inside it cannot be read ({why}); the archive "
                            f"is damaged or incomplete: re-download {source}") from None
        if outer is not None:  # a file inside named like an archive that is none
            raise UserError(f"{shown} is not a readable archive ({why}); if {outer.name} came "
                            f"this way, remove that file from it; else re-download "
                            f"{outer.name}") from None
        raise UserError(f"{shown}: cannot read it ({why}); is the file complete? "
                        "re-download it") from None
    return skipped


def _check_tree(root: Path, archive: Path, max_bytes: int) -> int:
    """Rules for what an external tool wrote: no links, nothing outside, size cap; not-data
    files are removed. Returns how many were."""
    total, junk = 0, []
    for p in root.rglob("*"):
        if p.is_symlink():
            raise UserError(f"{archive}: entry {p.relative_to(root)} is a link; refusing")
        if not_data(p.relative_to(root)):
            junk.append(p)
        elif p.is_file():
            total += p.stat().st_size
    if total > max_bytes:
        raise UserError(f"{archive}: more than {max_bytes / 1e9:.1f} GB unpacked; refusing")
    skipped = 0
    for p in sorted(junk, key=lambda p: len(p.parts)):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            p.unlink()
            skipped += 1
    return skipped


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.search(r"error|fail|unsupported|cannot|can't", ln, re.I)]
    return (errors or lines or ["no message"])[0][:160]


def _extract_external(archive: Path, dest: Path, max_bytes: int, shown: str) -> int:
    tried: list[str] = []
    for tool, argv in _EXTERNAL_RAR_TOOLS.items():
        if not shutil.which(tool):
            continue
        # The tool writes into a scratch folder first; only a checked tree moves on.
        with tempfile.TemporaryDirectory(dir=dest.parent) as scratch:
            proc = subprocess.run(argv(archive, scratch), capture_output=True, text=True)
            if proc.returncode != 0:
                tried.append(f"{tool}: {_first_line(proc.stderr + proc.stdout)}")
                continue  # the next tool may read what this one cannot
            skipped = _check_tree(Path(scratch), archive, max_bytes)
            for child in Path(scratch).iterdir():
                shutil.move(str(child), dest / child.name)
        return skipped
    if not tried:
        raise UserError(
            f"{shown}: a solid RAR4 archive, which libarchive cannot read; install unrar or "
            "unar (e.g. `apt-get install unar`) and rerun")
    damaged = any(_TRUNCATED.search(t) for t in tried)
    hint = ("the archive looks damaged or incomplete: re-download it" if damaged else
            "install unrar or unar (Debian's 7z has no RAR codec) and rerun")
    raise UserError(f"{shown}: a solid RAR4 archive no installed tool could read "
                    f"({'; '.join(tried)}); {hint}")


def extract(archive: Path, dest: Path, max_bytes: int, nested: bool = True) -> int:
    """Extract `archive` into the folder `dest` (created atomically; must not exist yet).

    With `nested`, archives found inside are extracted in place (into their own folder's
    parent) and removed, by the same rules: PALM ships a zip inside its zip. Returns how many
    not-data files (desktop junk) were skipped.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise UserError(f"{archive}: not found")
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        skipped = _extract_one(archive, tmp, max_bytes, str(archive))
        if nested:
            for _ in range(3):
                inner = sorted(p for p in tmp.rglob("*") if p.is_file() and is_archive(p))
                if not inner:
                    break
                for p in inner:
                    shown = f"{archive}: {p.relative_to(tmp).as_posix()} inside it"
                    skipped += _extract_one(p, p.parent, max_bytes, shown, archive)
                    p.unlink()
    return skipped


def _extract_one(archive: Path, dest: Path, max_bytes: int, shown: str,
                 outer: Path | None = None) -> int:
    if archive.name.lower().endswith(".rar") and rar4_is_solid(archive):
        return _extract_external(archive, dest, max_bytes, shown)
    return _extract_libarchive(archive, dest, max_bytes, shown, outer)


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
