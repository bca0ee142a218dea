"""A competition's data as one tree of paths, whatever form it came in.

Kaggle ships a competition as `<slug>.zip`, or (in a notebook) as the same files unpacked;
archives may sit inside (`train.zip`, `train.csv.zip`). Either way the tree is the same: an
archive's files count from its own top (as the Kaggle CLI's zip unpacks), an archive inside
one unpacks beside itself, and files unpacked by hand sit where they are. `prepare` builds it
from the extracted folders (`Tree.of`); `new` builds it by listing the archives, never
extracting an image (`Tree.listing`), and reads only the tables. Desktop junk never enters it.

One walk fills the tree; every lookup after it is a dict or one pass over the sorted paths,
never a glob per id, so 200,000 images list and match in seconds. An image is any file whose
extension Pillow's registry opens and decodes (gif, tif, webp, ...). A table over TABLE_LIMIT
is not kept by the listing: it is read again from its archive when needed (herbarium 2022's
train_metadata.json), and COCO metadata is parsed once per tree, as columns.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..archives import DESKTOP_FILES, extract, is_archive, not_data, safe_member_name
from ..errors import UserError
from . import coco
from .coco import Coco

TABLE_SUFFIXES = (".csv", ".xlsx", ".xls", ".json", ".txt")
TABLE_LIMIT = 256 << 20  # a listed table is read into memory up to this size
# Pillow formats that are no images to learn from: placeholders that cannot decode (stubs),
# headers without pixels (MPEG), PostScript (needs Ghostscript), IPTC metadata.
NOT_PICTURES = frozenset({"MPEG", "EPS", "IPTC"})


def _image_suffixes() -> tuple[str, ...]:
    """Every extension Pillow opens and decodes (its registry: gif, tif, webp, ...)."""
    from PIL import Image, ImageFile

    def decodes(fmt: str) -> bool:
        opener = Image.OPEN.get(fmt, (None,))[0]
        stub = isinstance(opener, type) and issubclass(opener, ImageFile.StubImageFile)
        return opener is not None and not stub and fmt not in NOT_PICTURES

    Image.init()
    return tuple(sorted(ext for ext, fmt in Image.registered_extensions().items()
                        if decodes(fmt)))


IMAGE_SUFFIXES = _image_suffixes()


def natural_key(text: str):
    """Sort key that puts 2 before 10 (numbers by value, the rest as text)."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text) if t]


def is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_SUFFIXES)


def stem(name: str) -> str:
    """The name without an image extension: `1.2.826.1234` keeps its `.1234`."""
    base, dot, ext = name.rpartition(".")
    return base if dot and f".{ext.lower()}" in IMAGE_SUFFIXES else name


@dataclass
class Root:
    """Where a part of the tree lives: a folder on disk (None: listed inside `where`)."""

    base: Path | None
    where: str  # for messages: `train.zip`, or the raw folder
    archive: bool = False  # `where` is an archive (its files were extracted to `base`)
    skip: frozenset[str] = frozenset()  # top-level names left out (the archives themselves)
    source: Path | None = None  # a listed archive's file (to read a member not kept)


@dataclass
class Tree:
    files: dict[str, int] = field(default_factory=dict)  # path -> index into roots
    roots: list[Root] = field(default_factory=list)
    tables: dict[str, bytes] = field(default_factory=dict)  # listed tables' bytes
    shadowed: int = 0  # files found twice (unpacked beside their archive): the first kept
    _dirs: set[str] | None = field(default=None, repr=False)
    _coco: dict = field(default_factory=dict, repr=False)  # path -> its Coco (None: other JSON)
    _images: pd.DataFrame | None = field(default=None, repr=False)

    def add(self, path: str, root: int) -> None:
        if path in self.files:
            self.shadowed += 1
        else:
            self.files[path] = root

    @classmethod
    def of(cls, roots: list[Root]) -> "Tree":
        """The files under each root's folder (earlier roots win a path both hold)."""
        tree = cls(roots=list(roots))
        for i, root in enumerate(roots):
            base = str(root.base)
            for folder, dirs, names in os.walk(base):
                rel_dir = os.path.relpath(folder, base).replace(os.sep, "/")
                dirs[:] = sorted(d for d in dirs if not not_data(d)
                                 and not (rel_dir == "." and d in root.skip))
                for name in names:
                    if not_data(name) or name.endswith(".part") or (
                            rel_dir == "." and name in root.skip):
                        continue
                    tree.add(name if rel_dir == "." else f"{rel_dir}/{name}", i)
        return tree

    @classmethod
    def listing(cls, raw_dir: Path) -> "Tree":
        """The tree of `raw_dir` as `prepare` would extract it, from the archives' listings
        (nested ones streamed, not written); only tables are read."""
        raw_dir = Path(raw_dir)
        tree = cls(roots=[Root(raw_dir, str(raw_dir))])
        archives = []
        for folder, dirs, names in os.walk(raw_dir):
            rel_dir = os.path.relpath(folder, raw_dir).replace(os.sep, "/")
            dirs[:] = sorted(d for d in dirs if not not_data(d))
            for name in sorted(names):
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                if not_data(name) or name.endswith(".part"):
                    continue
                if rel_dir == "." and is_archive(Path(name)):
                    archives.append(raw_dir / name)
                else:
                    tree.add(rel, 0)
        for archive in archives:
            tree.roots.append(Root(None, archive.name, archive=True, source=archive))
            _list_archive(archive, tree, len(tree.roots) - 1)
        return tree

    # -- lookups -------------------------------------------------------------------------

    def where(self, path: str) -> str:
        return self.roots[self.files[path]].where

    def real(self, path: str) -> Path:
        base = self.roots[self.files[path]].base
        if base is None:
            raise RuntimeError(f"{path} is listed, not extracted")
        return base / path

    def shown(self, path: str) -> str:
        """A path as the user can find it: inside its archive, or in the raw folder."""
        root = self.roots[self.files[path]]
        return f"{path} in {root.where}" if root.archive else f"{root.where}/{path}"

    def find_dir(self, patterns: list[str], what: str, key: str, holds: str = "direct",
                 required: bool = True) -> str | None:
        """The folder `patterns` names (each matched as the end of a folder's path, case
        aside; `.` is the top): the shallowest that holds images `holds` = "direct"ly, in
        "classes" (folders of its own), or anywhere "below". Ambiguity and absence are one
        line."""
        holders = {"direct": self._image_dirs, "classes": self._class_parents,
                   "below": self._ancestors}[holds]()
        class_folders = holds == "classes"
        found = sorted({d for p in patterns for d in holders if _ends_with(d, p)},
                       key=lambda d: (d.count("/") if d else -1, d))
        if not found:
            if not required:
                return None
            raise UserError(f"{what}: no folder {' or '.join(map(repr, patterns))} holding "
                            f"{'class folders of ' if class_folders else ''}images in the data "
                            f"(set {key})")
        depth = found[0].count("/") if found[0] else -1
        tied = [d for d in found if (d.count("/") if d else -1) == depth]
        if len(tied) > 1:
            raise UserError(f"{what}: several folders match {patterns}: {tied[:5]}; set {key} "
                            "to the one meant (a longer path tells them apart)")
        return found[0]

    def find_file(self, pattern: str, what: str, key: str, required: bool = True) -> str | None:
        """The file `pattern` names (a path's end, or a glob of its name), the shallowest."""
        if any(c in pattern for c in "*?["):
            found = [f for f in self.files if fnmatch.fnmatch(f.rpartition("/")[2], pattern)
                     or fnmatch.fnmatch(f, pattern)]
        else:
            base = pattern.strip("/").rpartition("/")[2].lower()
            found = [f for f in self.files if f.lower().endswith(base) and _ends_with(f, pattern)]
        if not found:
            if not required:
                return None
            raise UserError(f"{what}: no file {pattern!r} in the data (set {key})")
        depth = min(f.count("/") for f in found)
        tied = sorted(f for f in found if f.count("/") == depth)
        if len(tied) > 1:
            raise UserError(f"{what}: several files match {pattern!r}: {tied[:5]}; set {key} "
                            "to the one meant")
        return tied[0]

    @property
    def images(self) -> pd.DataFrame:
        """Every image, one row each (path, dir, name, stem), sorted by path: made once."""
        if self._images is None:
            paths = pd.Series(sorted(f for f in self.files if is_image(f)), dtype=object)
            parts = paths.str.rpartition("/")
            names = parts[2]
            self._images = pd.DataFrame({"path": paths, "dir": parts[0], "name": names,
                                         "stem": names.str.rpartition(".")[0]})
        return self._images

    def images_below(self, folder: str) -> list[str]:
        """Every image under `folder` (`""`: the top), sorted by path."""
        return self.images_frame_below(folder)["path"].tolist()

    def images_frame_below(self, folder: str) -> pd.DataFrame:
        table = self.images
        if not folder:
            return table
        return table[(table["dir"] == folder) | table["dir"].str.startswith(folder + "/")]

    def read_bytes(self, path: str) -> bytes:
        """A file's bytes: kept from the listing, read from disk, or streamed again from its
        archive (a table over TABLE_LIMIT, such as herbarium 2022's train_metadata.json)."""
        data = self.tables.get(path)
        if data is not None:
            return data
        root = self.roots[self.files[path]]
        if root.base is not None:
            return (root.base / path).read_bytes()
        return _member_bytes(root.source, path)

    @contextlib.contextmanager
    def open(self, path: str):
        """A binary, seekable stream of a file: on disk, kept from the listing, or a zip
        member streamed (Cdiscount's 58 GB train.bson is never read into memory); a member of
        another archive is read whole (read_bytes)."""
        root = self.roots[self.files[path]]
        if path in self.tables:
            yield io.BytesIO(self.tables[path])
        elif root.base is not None:
            with open(root.base / path, "rb") as f:
                yield f
        elif root.source.name.lower().endswith(".zip") and _in_zip(root.source, path):
            with zipfile.ZipFile(root.source) as z, z.open(path) as f:
                yield f
        else:
            yield io.BytesIO(self.read_bytes(path))

    def coco(self, path: str) -> Coco | None:
        """`path` read as COCO-style metadata (None: other JSON), parsed once per tree."""
        if path not in self._coco:
            self._coco[path] = coco.load(lambda: self.read_bytes(path), self.shown(path))
        return self._coco[path]

    def read_table(self, path: str) -> pd.DataFrame:
        """A CSV or xlsx as text cells: ids are never re-typed (`0001` stays `0001`)."""
        on_disk = path not in self.tables and self.roots[self.files[path]].base is not None
        source = self.real(path) if on_disk else io.BytesIO(self.read_bytes(path))
        try:
            if path.lower().endswith((".xlsx", ".xls")):
                frame = _text_cells(pd.read_excel(source))
            else:
                frame = pd.read_csv(source, dtype=str, keep_default_na=False,
                                    encoding="utf-8-sig")
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
            raise UserError(f"{self.shown(path)}: not a readable table ({str(e)[:160]})") from None
        blank = (frame == "").all(axis=1) if len(frame.columns) else None
        return frame[~blank].reset_index(drop=True) if blank is not None and blank.any() else frame

    def _image_dirs(self) -> set[str]:
        if self._dirs is None:
            self._dirs = set(self.images["dir"].unique())
        return self._dirs

    def _class_parents(self) -> set[str]:
        return {d.rpartition("/")[0] for d in self._image_dirs() if d}

    def _ancestors(self) -> set[str]:
        out = {""}
        for d in self._image_dirs():
            parts = d.split("/") if d else []
            out.update("/".join(parts[:k]) for k in range(1, len(parts) + 1))
        return out


def _ends_with(path: str, pattern: str) -> bool:
    p = pattern.strip("/").lower()
    if p in ("", "."):
        return path == ""
    path = path.lower()
    return path == p or path.endswith("/" + p)


def _text_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """An xlsx read as text: integral floats as integers (a 1 stored as 1.0), empty as ''."""
    def text(v) -> str:
        if v is None or (isinstance(v, float) and v != v):
            return ""
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    frame.columns = [str(c) for c in frame.columns]
    return frame.map(text) if hasattr(frame, "map") else frame.applymap(text)


class _Blocks(io.RawIOBase):
    """A stream over an archive entry's blocks, for reading an archive inside an archive
    without writing it out."""

    def __init__(self, blocks):
        self.blocks, self.buf = iter(blocks), b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self.buf:
            try:
                self.buf = bytes(next(self.blocks))
            except StopIteration:
                return 0
        n = min(len(b), len(self.buf))
        b[:n], self.buf = self.buf[:n], self.buf[n:]
        return n


def _list_archive(archive: Path, tree: Tree, root: int) -> None:
    import libarchive

    try:
        if archive.name.lower().endswith(".zip"):  # its central directory: no pass over data
            return _list_zip(archive, tree, root)
        with libarchive.file_reader(str(archive)) as reader:
            _list_entries(reader, "", tree, root, archive, 0)
    except (libarchive.ArchiveError, zipfile.BadZipFile, NotImplementedError):
        _list_by_extracting(archive, tree, root)  # a solid RAR4, a zip inside that cannot stream


def _plain(name: str) -> bool:
    """A relative, clean, non-junk path (most names): the full checks would pass it as is."""
    return not (name.startswith(("/", ".")) or "\\" in name or "/." in name or "//" in name
                or ":" in name or "__MACOSX" in name
                or name.rpartition("/")[2].lower() in DESKTOP_FILES)


def _list_zip(archive: Path, tree: Tree, root: int) -> None:
    import libarchive

    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            if info.is_dir():
                continue
            name = info.filename
            if not _plain(name):  # the rare name that needs the full rules
                name = safe_member_name(name, archive)
                if not_data(name):
                    continue
            if is_archive(name):
                with z.open(info) as f, libarchive.stream_reader(f) as inner:
                    _list_entries(inner, name.rpartition("/")[0], tree, root, archive, 1)
                continue
            tree.add(name, root)
            if name.lower().endswith(TABLE_SUFFIXES) and info.file_size <= TABLE_LIMIT:
                tree.tables[name] = z.read(info)


def _list_entries(reader, prefix: str, tree: Tree, root: int, archive: Path,
                  depth: int) -> None:
    import libarchive

    for entry in reader:
        if entry.isdir:
            continue
        rel = safe_member_name(entry.pathname, archive)
        name = f"{prefix}/{rel}" if prefix else rel
        if not_data(rel):
            continue
        if is_archive(name) and depth < 3:  # unpacked beside itself, as extract() does
            with libarchive.stream_reader(_Blocks(entry.get_blocks())) as inner:
                _list_entries(inner, name.rpartition("/")[0], tree, root, archive, depth + 1)
            continue
        tree.add(name, root)
        if name.lower().endswith(TABLE_SUFFIXES) and (entry.size or 0) <= TABLE_LIMIT:
            tree.tables[name] = b"".join(bytes(b) for b in entry.get_blocks())


def _list_by_extracting(archive: Path, tree: Tree, root: int) -> None:
    """The slow way, for what libarchive cannot stream: extract to a scratch folder, walk it,
    keep its tables' bytes."""
    with tempfile.TemporaryDirectory(prefix="imgcomp-list-") as tmp:
        dest = Path(tmp) / "x"
        extract(archive, dest, 1 << 62)
        sub = Tree.of([Root(dest, archive.name, archive=True)])
        for path in sub.files:
            tree.add(path, root)
            if path.lower().endswith(TABLE_SUFFIXES):
                tree.tables[path] = (dest / path).read_bytes()


def _member_bytes(archive: Path, path: str) -> bytes:
    """The bytes of `path` in `archive` as the listing placed it (nested archives unpacked
    beside themselves), found by one more pass over the archive."""
    import libarchive

    if archive.name.lower().endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            if path in z.NameToInfo:
                return z.read(path)
            for info in z.infolist():
                if is_archive(info.filename) and _inside(info.filename, path):
                    with z.open(info) as f, libarchive.stream_reader(f) as inner:
                        found = _find_entry(inner, info.filename.rpartition("/")[0], path, 1)
                    if found is not None:
                        return found
    else:
        with libarchive.file_reader(str(archive)) as reader:
            found = _find_entry(reader, "", path, 0)
        if found is not None:
            return found
    raise UserError(f"{path} in {archive.name}: listed before, not found now (did the archive "
                    "change?)")


def _in_zip(archive: Path, path: str) -> bool:
    with zipfile.ZipFile(archive) as z:
        return path in z.NameToInfo


def _inside(inner_archive: str, path: str) -> bool:
    folder = inner_archive.rpartition("/")[0]
    return not folder or path.startswith(folder + "/")


def _find_entry(reader, prefix: str, path: str, depth: int) -> bytes | None:
    import libarchive

    for entry in reader:
        if entry.isdir:
            continue
        name = f"{prefix}/{entry.pathname}" if prefix else entry.pathname
        if name == path:
            return b"".join(bytes(b) for b in entry.get_blocks())
        if is_archive(name) and depth < 3 and _inside(name, path):
            with libarchive.stream_reader(_Blocks(entry.get_blocks())) as inner:
                found = _find_entry(inner, name.rpartition("/")[0], path, depth + 1)
            if found is not None:
                return found
    return None
