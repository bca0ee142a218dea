"""Labels and test ids kept in COCO-style JSON metadata, as the FGVC competitions ship them.

Herbarium 2020-2022, iNaturalist 2017-2021 and iWildCam 2020-2022 (whose 2021-2022 editions
score counts per sequence) describe their images in JSON: an `images` list (an id and a
`file_name` each), `annotations` naming an image and a category, and `categories`. Test
metadata holds `images` alone, or is a bare list of image entries (herbarium 2022's
test_metadata.json). Key names vary by year: an image's id is `id` or `image_id` (herbarium
2022), a category's `id` or `category_id`. Ids come out as text exactly as the JSON
writes them (`12345`, `5998cfa4-23d2-11e8-a6a3-ec086b02610b`, `00333__004`), so an id read here
is the id that goes into the submission.

A `file_name` is relative to something the metadata does not say: the JSON's own folder
(herbarium 2020's `nybg2020/train/metadata.json` names `images/156/72/354106.jpg`), an image
folder beside it (herbarium 2022's `train_images/`), or a top folder the archive does not hold
(a `train_val2019/` that a repacked tar left out). `match_files` finds one rule for a whole
table, drop k leading folders and/or put a folder in front, from a sample of names looked up
by file name, and checks it on every name with one dict lookup each.

Pure functions on the bytes and objects given: no params, no files opened. The parsed JSON is
the caller's; columns are built one at a time from it and no per-row object is kept, so the
caller can drop the parsed object once `parse` returns.
"""

from __future__ import annotations

import codecs
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Sequence

import pandas as pd

from ..errors import UserError

IMAGE_ID_KEYS = ("id", "image_id")
CATEGORY_ID_KEYS = ("id", "category_id")
PROBE = 3  # entries looked at to tell COCO metadata from other JSON
SAMPLE = 64  # names whose look-ups propose the rules a whole table is checked against
SHORTLIST = 8  # rules checked on every name
PER_NAME = 4096  # files sharing a sample name's base name that propose rules


def _preview(items: Sequence, n: int = 5) -> str:
    items = list(items)
    return f"{items[:n]}" + (f" and {len(items) - n:,} more" if len(items) > n else "")


# -- bytes to objects ------------------------------------------------------------------------


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding): UTF-8 with or without a byte-order mark, UTF-16 with one, else
    latin-1 (herbarium 2020's metadata.json is latin-1: UTF-8 fails on it)."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8", errors="strict"), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def load_json(data: bytes, where: str) -> Any:
    """The JSON in `data`; invalid JSON is one line naming `where`."""
    return _loads(_text(data, where), where)


def _text(data: bytes, where: str) -> str:
    try:
        return decode(data)[0]
    except UnicodeDecodeError as e:  # a UTF-8 BOM before bytes that are not UTF-8
        raise UserError(f"{where}: not readable text ({e.reason} at byte {e.start}); "
                        "re-download it") from None


def _loads(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{where}: not valid JSON ({e.msg} at line {e.lineno} column "
                        f"{e.colno}); re-download it") from None
    except RecursionError:
        raise UserError(f"{where}: JSON nested too deeply to read") from None


# -- what COCO metadata looks like ----------------------------------------------------------


def _id_key(entry: Any, keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in entry), None) if isinstance(entry, dict) else None


def _image_entries(entries: Any) -> bool:
    """A non-empty list whose first entries each carry an image id and a file_name."""
    return isinstance(entries, list) and bool(entries) and all(
        _id_key(e, IMAGE_ID_KEYS) is not None and "file_name" in e for e in entries[:PROBE])


def is_coco(obj: Any) -> bool:
    """True for COCO-style image metadata: a dict whose `images` list holds dicts with an id
    (`id` or `image_id`) and a `file_name` (any `annotations` holding `image_id` and
    `category_id`), or a bare list of such image dicts. Detector output (iWildCam's MegaDetector
    results: images without file names), captions and label maps are not."""
    if isinstance(obj, list):
        return _image_entries(obj)
    if not isinstance(obj, dict) or not _image_entries(obj.get("images")):
        return False
    annotations = obj.get("annotations")
    if annotations is None:
        return True
    return isinstance(annotations, list) and all(
        isinstance(a, dict) and "image_id" in a and "category_id" in a
        for a in annotations[:PROBE])


# -- objects to columns ----------------------------------------------------------------------


@dataclass
class Coco:
    """One metadata file as columns of text.

    images: `id`, `file_name`, in the JSON's order. labels (None without `annotations`):
    `image_id`, `category_id`, one row per distinct (image, category), in the images' order; an
    image with annotations naming different categories has a row for each, and is listed in
    `several`. categories (None without `categories`): `id` as text, then the other fields
    as the JSON holds them."""

    images: pd.DataFrame
    labels: pd.DataFrame | None = None
    categories: pd.DataFrame | None = None
    several: list[str] = field(default_factory=list)  # images labelled with 2+ categories
    unlabelled: list[str] = field(default_factory=list)  # images no annotation names
    uncategorised: list[str] = field(default_factory=list)  # annotated ids `categories` lacks
    image_key: str = "id"  # where an image's id was read (`image_id` in herbarium 2022)
    duplicates: int = 0  # annotations repeating an (image, category) pair, collapsed

    def notes(self, where: str) -> list[str]:
        """One line for each thing the caller may want to tell the user."""
        out = []
        if self.duplicates:
            out.append(f"{where}: {self.duplicates:,} annotation(s) repeat an image's category "
                       "(counted once)")
        if self.several:
            out.append(f"{where}: {len(self.several):,} image(s) annotated with more than one "
                       f"category, each kept: {_preview(self.several)}")
        if self.unlabelled:
            out.append(f"{where}: {len(self.unlabelled):,} image(s) without an annotation: "
                       f"{_preview(self.unlabelled)}")
        if self.uncategorised:
            out.append(f"{where}: annotations name category id(s) that `categories` does not "
                       f"list: {_preview(self.uncategorised)}")
        return out


def _texts(values: list, what: str, where: str) -> list[str]:
    """JSON scalars as their text (`12345`, `"00333__004"`); anything else is one line."""
    kinds = set(map(type, values))
    if kinds <= {str}:
        return values
    if kinds <= {str, int, float}:
        return [v if type(v) is str else str(v) for v in values]
    bad = [i for i, v in enumerate(values) if type(v) not in (str, int, float)]
    raise UserError(f"{where}: {len(bad):,} {what} that are not a number or text (null, true, "
                    f"a list): at positions {_preview(bad)}")


def _column(entries: list, key: str, what: str, where: str) -> list:
    """entries[i][key] for every entry; an entry without it is one line naming its position."""
    try:
        return [e[key] for e in entries]
    except (KeyError, TypeError):
        bad = [i for i, e in enumerate(entries) if not isinstance(e, dict) or key not in e]
        raise UserError(f"{where}: {len(bad):,} {what} without {key!r}: at positions "
                        f"{_preview(bad)}") from None


def _entries(obj: Any, key: str, where: str) -> list:
    entries = obj.get(key)
    if not isinstance(entries, list):
        raise UserError(f"{where}: {key!r} is a {type(entries).__name__}, not a list")
    return entries


def _images(entries: list, where: str) -> tuple[pd.DataFrame, str]:
    key = _id_key(entries[0], IMAGE_ID_KEYS) if entries else "id"
    ids = _texts(_column(entries, key, "images", where), f"image {key}s", where)
    names = _column(entries, "file_name", "images", where)
    if not all(type(n) is str for n in names):
        bad = [i for i, n in enumerate(names) if type(n) is not str]
        raise UserError(f"{where}: {len(bad):,} images whose file_name is not text: at "
                        f"positions {_preview(bad)}")
    frame = pd.DataFrame({"id": ids, "file_name": names})
    for col, what in (("id", f"image {key}"), ("file_name", "file_name")):
        if (twice := frame[col][frame[col].duplicated()]).size:
            raise UserError(f"{where}: {twice.size:,} images repeat an {what} already listed: "
                            f"{_preview(twice.unique().tolist())}")
    return frame, key


def _categories(entries: list, where: str) -> pd.DataFrame:
    key = _id_key(entries[0], CATEGORY_ID_KEYS) if entries else "id"
    ids = _texts(_column(entries, key, "categories", where), f"category {key}s", where)
    frame = pd.DataFrame.from_records(entries)
    frame = frame.drop(columns=[key]) if key in frame.columns else frame
    frame.insert(0, "id", ids)
    if (twice := frame["id"][frame["id"].duplicated()]).size:
        raise UserError(f"{where}: {twice.size:,} categories repeat an {key} already listed: "
                        f"{_preview(twice.unique().tolist())}")
    return frame


def _labels(entries: list, images: pd.DataFrame, where: str) -> tuple[pd.DataFrame, int]:
    """(one row per distinct (image, category) in the images' order, duplicates collapsed)."""
    image_ids = _texts(_column(entries, "image_id", "annotations", where),
                       "annotation image_ids", where)
    category_ids = _texts(_column(entries, "category_id", "annotations", where),
                          "annotation category_ids", where)
    pairs = pd.DataFrame({"image_id": image_ids, "category_id": category_ids})
    del image_ids, category_ids
    order = pd.Index(images["id"]).get_indexer(pairs["image_id"])
    if (order < 0).any():
        stray = pairs["image_id"][order < 0]
        raise UserError(f"{where}: {stray.size:,} annotation(s) name image ids that `images` "
                        f"does not hold: {_preview(stray.unique().tolist())}")
    unique = ~pairs.duplicated().to_numpy()
    pairs = pairs[unique].iloc[order[unique].argsort(kind="stable")].reset_index(drop=True)
    return pairs, int((~unique).sum())


def parse(obj: Any, where: str) -> Coco:
    """The columns of COCO metadata (see `is_coco`); what does not fit is one line naming
    `where` and the entries at fault."""
    if not is_coco(obj):
        raise UserError(f"{where}: not COCO-style image metadata (an `images` list of entries "
                        "with an id and a file_name)")
    if isinstance(obj, list):
        images, key = _images(obj, where)
        return Coco(images, image_key=key)
    images, key = _images(_entries(obj, "images", where), where)
    coco = Coco(images, image_key=key)
    if "categories" in obj:
        coco.categories = _categories(_entries(obj, "categories", where), where)
    if "annotations" in obj:
        coco.labels, coco.duplicates = _labels(_entries(obj, "annotations", where), images,
                                               where)
        _describe_labels(coco)
    return coco


def _describe_labels(coco: Coco) -> None:
    categories_per_image = Counter(coco.labels["image_id"].tolist())
    coco.several = [i for i, n in categories_per_image.items() if n > 1]
    coco.unlabelled = [i for i in coco.images["id"].tolist() if i not in categories_per_image]
    if coco.categories is not None:
        listed = set(coco.categories["id"].tolist())
        named = dict.fromkeys(coco.labels["category_id"].tolist())
        coco.uncategorised = [c for c in named if c not in listed]


def read(data: bytes, where: str) -> Coco | None:
    """`data` parsed as COCO metadata, or None when it is other JSON."""
    obj = load_json(data, where)
    return parse(obj, where) if is_coco(obj) else None


def load(read_bytes: Callable[[], bytes], where: str) -> Coco | None:
    """`read` for a file that may be large (herbarium 2022's train_metadata.json): its bytes
    are dropped once decoded, the document is built slim (`slim_loads`) and dropped once its
    columns are made; JSON that names no `file_name` is not parsed at all (None)."""
    text = _named_files(read_bytes(), where)
    if text is None:
        return None
    try:
        obj = slim_loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{where}: not valid JSON ({e.msg} at line {e.lineno} column "
                        f"{e.colno}); re-download it") from None
    except RecursionError:
        raise UserError(f"{where}: JSON nested too deeply to read") from None
    del text
    return parse(obj, where) if is_coco(obj) else None


# Per top-level array, the keys of its entries that `parse` reads (None: whole entries); the
# entries of any other top-level array are read and dropped.
SLIM = {"images": IMAGE_ID_KEYS + ("file_name",), "annotations": ("image_id", "category_id"),
        "categories": None}
_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def slim_loads(text: str) -> Any:
    """`json.loads(text)` as `parse` sees it, built one entry of a top-level array at a time:
    `images` and `annotations` entries keep only the keys `parse` reads, other top-level
    arrays (herbarium 2022's genus `distances`) are empty, a bare list is read as images. The
    parsed whole is never held: the peak is the text and the slim entries."""
    pos = _space(text, 0)
    if text.startswith("[", pos):
        out, pos = _array(text, pos, SLIM["images"])
    elif text.startswith("{", pos):
        out, pos = _object(text, pos)
    else:
        return _DECODER.decode(text)
    if _space(text, pos) != len(text):
        raise json.JSONDecodeError("Extra data", text, _space(text, pos))
    return out


def _space(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()


def _expect(text: str, pos: int, char: str) -> int:
    pos = _space(text, pos)
    if not text.startswith(char, pos):
        raise json.JSONDecodeError(f"Expecting {char!r} delimiter", text, pos)
    return _space(text, pos + 1)


def _object(text: str, pos: int) -> tuple[dict, int]:
    out: dict = {}
    pos = _space(text, pos + 1)
    if text.startswith("}", pos):
        return out, pos + 1
    while True:
        if not text.startswith('"', pos):
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes",
                                       text, pos)
        key, pos = _DECODER.raw_decode(text, pos)
        pos = _expect(text, pos, ":")
        if text.startswith("[", pos):
            out[key], pos = _array(text, pos, SLIM.get(key, ()))
        else:
            out[key], pos = _DECODER.raw_decode(text, pos)
        pos = _space(text, pos)
        if text.startswith("}", pos):
            return out, pos + 1
        pos = _expect(text, pos, ",")


def _array(text: str, pos: int, keep) -> tuple[list, int]:
    """The array at `pos`, its entries trimmed to `keep` (None: whole; (): dropped)."""
    out: list = []
    pos = _space(text, pos + 1)
    if text.startswith("]", pos):
        return out, pos + 1
    while True:
        value, pos = _DECODER.raw_decode(text, pos)
        if keep is None or not isinstance(value, dict):
            out.append(value) if keep != () else None
        elif keep:
            out.append({k: value[k] for k in keep if k in value})
        pos = _space(text, pos)
        if text.startswith("]", pos):
            return out, pos + 1
        pos = _expect(text, pos, ",")


def _named_files(data: bytes, where: str) -> str | None:
    """The text of `data` if it may be COCO metadata (it holds `file_name`), else None."""
    if b"file_name" not in data and not data.startswith((codecs.BOM_UTF16_LE,
                                                          codecs.BOM_UTF16_BE)):
        return None
    return _text(data, where)


# -- file names to the data's paths ----------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A file_name's path in the data: its first `drop` folders dropped, `prefix` put in front
    (`prefix` is empty or ends with `/`)."""

    drop: int = 0
    prefix: str = ""

    def apply(self, name: str) -> str | None:
        """The name's path under this rule; None when it has fewer folders than `drop`."""
        return _targets(self, [name])[0]

    def describe(self) -> str:
        steps = ([f"without its first {self.drop} folder(s)"] if self.drop else []) + (
            [f"under {self.prefix}"] if self.prefix else [])
        return "file_name " + (" and ".join(steps) if steps else "as it is")


@dataclass
class Matched:
    paths: list[str | None]  # per file_name, its path in the data (None: missing, if allowed)
    rule: Rule
    description: str  # one line for the user: the rule, an example, the runners-up


def _clean(name: str) -> str:
    name = name.replace("\\", "/")
    while name.startswith(("./", "/")):
        name = name[1:] if name.startswith("/") else name[2:]
    return name


def _spread(names: list[str], n: int) -> list[str]:
    """Up to n names spread evenly over the table (first and last included)."""
    if len(names) <= n:
        return list(names)
    step = (len(names) - 1) / (n - 1)
    return [names[round(i * step)] for i in range(n)]


def _proposals(sample: list[str], paths: Collection[str]) -> Counter:
    """Each rule that maps a sample name onto a file of the data, with how many it maps."""
    wanted = {n.rpartition("/")[2] for n in sample}
    by_base: dict[str, list[str]] = {}
    for p in paths:  # one pass; only files sharing a sample name's base name are kept
        base = p.rpartition("/")[2]
        if base in wanted:
            by_base.setdefault(base, []).append(p)
    votes: Counter = Counter()
    for name in sample:
        parts = name.split("/")
        rules = set()
        for p in sorted(by_base.get(parts[-1], ()))[:PER_NAME]:
            for k in range(len(parts)):
                tail = "/".join(parts[k:])
                if p == tail or p.endswith("/" + tail):
                    rules.add(Rule(k, p[:len(p) - len(tail)]))
        votes.update(rules)
    return votes


def _preference(rule: Rule, home: str) -> tuple:
    """Rules that match alike are ranked: the metadata file's own folder first (a file_name is
    relative to it in COCO), then the fewest folders dropped, the shortest prefix, by name."""
    return rule.prefix != home, rule.drop, rule.prefix.count("/"), len(rule.prefix), rule.prefix


@dataclass
class _Tried:
    rule: Rule
    paths: list[str | None]
    missing: int
    collisions: int  # names sharing a path with another name under this rule

    @property
    def faults(self) -> int:
        return self.missing + self.collisions


def _targets(rule: Rule, names: list[str]) -> list[str | None]:
    """rule.apply on every name, without a call per name."""
    if rule.drop:
        k = rule.drop
        tails = [parts[-1] if len(parts) > k else None
                 for parts in (n.split("/", k) for n in names)]
    else:
        tails = names
    if not rule.prefix:
        return list(tails)
    return [rule.prefix + t if t is not None else None for t in tails]


def _try(rule: Rule, names: list[str], paths: Collection[str]) -> _Tried:
    found = [p if p is not None and p in paths else None for p in _targets(rule, names)]
    hits = len(found) - found.count(None)
    unique = len(set(found)) - (hits < len(found))
    return _Tried(rule, found, len(found) - hits, hits - unique)


def match_files(file_names: Sequence[str], paths: Collection[str], where: str,
                folder: str = "", allow_missing: bool = False) -> Matched:
    """Each file_name's path among `paths` (relative posix paths of the data, as it unpacks),
    by one rule for the whole table. `folder` is where the metadata file sits (its rule wins a
    tie). A name no rule finds is one line with how many and which, unless `allow_missing`
    (then its path is None and the description counts it)."""
    names = [_clean(n) for n in file_names]
    if not names:
        return Matched([], Rule(), "no file names")
    if not isinstance(paths, (set, frozenset, dict)):
        paths = set(paths)
    home = folder.strip("/") + "/" if folder.strip("/") else ""
    sample = _spread(names, SAMPLE)
    votes = _proposals(sample, paths)
    if not votes:
        raise UserError(f"{where}: no file_name names a file of the data, however its folders "
                        f"are read: {_preview(sample)} (are the images downloaded?)")
    ranked = sorted(votes, key=lambda r: (-votes[r], _preference(r, home)))[:SHORTLIST]
    fit = [r for r in ranked if votes[r] == len(sample)]
    tried = _fitting(fit, sample, names, paths) if fit else []
    if not tried or tried[0].faults:  # no reading fits every name: the closest, for the message
        tried = sorted((_try(r, names, paths) for r in ranked),
                       key=lambda t: (t.faults, _preference(t.rule, home)))
    best = tried[0]
    if best.collisions:
        raise UserError(f"{where}: {best.collisions:,} file_name(s) land on a file another one "
                        f"names too, read as {best.rule.describe()} (the closest reading): "
                        f"{_preview(_shared(best, names))}")
    if best.missing and not allow_missing:
        lost = [n for n, p in zip(names, best.paths) if p is None]
        raise UserError(f"{where}: {len(lost):,} of {len(names):,} file_name(s) name no file of "
                        f"the data ({best.rule.describe()}, the closest reading): "
                        f"{_preview(lost)} (are those images missing from the download?)")
    return Matched(best.paths, best.rule, _description(best, tried, names))


def place(file_names: Sequence[str], rule: Rule, paths: Collection[str], where: str,
          key: str) -> list[str]:
    """Each file_name's path under a rule already chosen (the block's): a name it does not
    find, or two names on one file, is one line with how many and which, naming `key`."""
    names = [_clean(n) for n in file_names]
    found = _try(rule, names, paths)
    if found.missing:
        lost = [n for n, p in zip(names, found.paths) if p is None]
        raise UserError(f"{where}: {len(lost):,} of {len(names):,} file_name(s) name no file of "
                        f"the data read as {rule.describe()}: {_preview(lost)} (set {key}.drop "
                        f"and {key}.prefix; `new` finds them)")
    if found.collisions:
        raise UserError(f"{where}: {found.collisions:,} file_name(s) land on a file another one "
                        f"names too, read as {rule.describe()}: {_preview(_shared(found, names))}")
    return found.paths


def _shared(tried: _Tried, names: list[str]) -> list[str]:
    """`a/x.jpg + b/x.jpg -> x.jpg` for each file two or more names land on."""
    by_path: dict[str, list[str]] = {}
    for name, path in zip(names, tried.paths):
        if path is not None:
            by_path.setdefault(path, []).append(name)
    return [f"{' + '.join(ns[:3])} -> {p}" for p, ns in by_path.items() if len(ns) > 1]


def _fitting(fit: list[Rule], sample: list[str], names: list[str],
             paths: Collection[str]) -> list[_Tried]:
    """The rules that fit every sampled name, checked on every name: the preferred one, then
    one for each other set of files the sample points to (a rule that drops a folder all names
    share and puts it back reads the same files, and is not checked again). A rule that puts
    two sampled names on one file is not checked: it cannot fit."""
    tried, seen = [], []
    for rule in fit:
        points = _targets(rule, sample)
        if points not in seen and len(set(points)) == len(points):
            seen.append(points)
            tried.append(_try(rule, names, paths))
    return sorted(tried, key=lambda t: t.faults)  # stable: preference kept among equals


def _description(best: _Tried, tried: list[_Tried], names: list[str]) -> str:
    text = best.rule.describe()
    if best.rule != Rule():
        k = next(i for i, p in enumerate(best.paths) if p is not None)
        text += f" ({names[k]} -> {best.paths[k]})"
    if best.missing:
        text += f"; {best.missing:,} of {len(names):,} name no file, left out"
    others = [t for t in tried[1:] if t.faults == 0 and t.paths != best.paths]
    if others:
        text += (f"; also fits every name: {'; '.join(t.rule.describe() for t in others)} "
                 "(taken: relative to the metadata's folder, else the fewest folders dropped)")
    return text
