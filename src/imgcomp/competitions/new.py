"""`python -m imgcomp new <slug> --metric M`: a competition's params block from its files.

It lists `data/raw/<slug>/` (Kaggle's zip, or its files unpacked) without extracting an image,
infers the block (array_inspect.py where samples are arrays or stacks of band images, else
inspect.py), checks it by listing the data through it exactly as `prepare`
will (a sample whose labels are not train's classes stops it), prints three train files with
their labels and three test ids with their files, and writes it into params.yaml as text: the
rest of the file, comments included, stays byte for byte. It writes `competitions.<slug>` (every key, with a comment on what it inferred),
`augment.<slug>`, `kaggle.<slug>`, sets `competition: <slug>` and `folds.group_column` (a
patient or subject column of the train table, or null). Where the files do not decide
a key it stops with one line naming it; `--set KEY=VALUE` (a YAML value; `train.` is the first
train source) decides it and overrides any inferred key.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import yaml

from ..errors import UserError
from ..fileio import write_text
from ..params import NAME, parse_params
from .array_inspect import detect as detect_arrays
from .block import CompetitionBlock, check_metric_name
from .inspect import check_sample_labels, infer, preview, unseen_token
from .layout import resolve, sample_table
from .targets_inspect import detect as detect_targets
from .tree import Tree

AUGMENT = ("{scale: [0.35, 1.0], ratio: [0.75, 1.333], hflip: 0.5, vflip: 0.0, rotate: 0, "
           "color_jitter: 0.2}")
AUGMENT_NOTE = "photos: random crops, mirrors, colour (hflip: 0 where orientation matters)"
ARRAY_AUGMENT = ("{scale: [0.35, 1.0], ratio: [0.75, 1.333], hflip: 0.5, vflip: 0.0, rotate: 0, "
                 "color_jitter: 0.0}", "array samples: crops and mirrors; no colour jitter "
                 "(bands are no RGB colours; hflip: 0 where orientation matters)")
TOP = re.compile(r"^[^\s#][^:]*:")


def parse_sets(sets: list[str]) -> dict[str, object]:
    out = {}
    for item in sets:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UserError(f"--set {item!r}: write KEY=VALUE, e.g. --set train.labels.label=breed")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out


def _set(block: dict, key: str, value) -> None:
    node, parts = block, key.split(".")
    for part in parts[:-1]:
        node = node[0] if isinstance(node, list) else node  # train.x: the first source
        node = node.setdefault(part, {})
    node = node[0] if isinstance(node, list) else node
    node[parts[-1]] = value


def render(name: str, block: dict, comments: dict[str, str], raw_dir: Path) -> str:
    """The block as YAML text, two spaces in (under `competitions:`), a comment per key."""
    def flow(v) -> str:
        return yaml.safe_dump(v, default_flow_style=True, sort_keys=False,
                              width=10_000).strip().removesuffix("...").strip()

    def line(indent: int, key: str, value, path: str) -> str:
        text = f"{' ' * indent}{key}: {flow(value)}"
        note = comments.get(path)
        return f"{text:<38}  # {note}" if note else text

    out = [f"  {flow(name)}:  # written by `python -m imgcomp new {name}` from {raw_dir}/"]
    for key, value in block.items():
        if key == "train":
            out.append("    train:")
            for k, src in enumerate(value):
                for j, (sk, sv) in enumerate(src.items()):
                    lead = "      - " if j == 0 else "        "
                    out.append(line(0, lead + sk, sv, f"train.{sk}"))
        elif key in ("test", "submission"):
            out.append(f"    {key}:")
            out += [line(6, sk, sv, f"{key}.{sk}") for sk, sv in value.items()]
        else:
            out.append(line(4, key, value, key))
    return "\n".join(out) + "\n"


def _section(lines: list[str], key: str) -> tuple[int, int]:
    """(first line after `key:`, end) of a top-level block-style section."""
    starts = [i for i, ln in enumerate(lines) if ln.split("#")[0].rstrip() == f"{key}:"]
    if len(starts) != 1:
        raise UserError(f"params.yaml: no top-level `{key}:` section in block style to add to")
    start = starts[0] + 1
    end = next((i for i in range(start, len(lines)) if TOP.match(lines[i])), len(lines))
    while end > start and not lines[end - 1].strip():
        end -= 1  # the blank lines before the next section stay where they are
    return start, end


def _entry(lines: list[str], start: int, end: int, name: str) -> tuple[int, int] | None:
    """The lines of `  name: ...` inside a section (its continuation lines included)."""
    keys = tuple(f"  {k}:" for k in (name, f"'{name}'", f'"{name}"'))
    for i in range(start, end):
        if lines[i].startswith(keys):
            j = i + 1
            while j < end and (not lines[j].strip() or lines[j].startswith("   ")):
                j += 1
            while j > i + 1 and not lines[j - 1].strip():
                j -= 1
            return i, j
    return None


def _put(lines: list[str], section: str, name: str, text: list[str]) -> list[str]:
    start, end = _section(lines, section)
    found = _entry(lines, start, end, name)
    if found:
        return lines[:found[0]] + text + lines[found[1]:]
    return lines[:end] + text + lines[end:]


def _group_line(lines: list[str], group: str | None, why: str) -> list[str]:
    """folds.group_column, set in place (its comment says why)."""
    start, end = _section(lines, "folds")
    at = [i for i in range(start, end) if re.match(r"^\s+group_column\s*:", lines[i])]
    if len(at) != 1:
        raise UserError("params.yaml: no `group_column:` line under `folds:` to set")
    if (yaml.safe_load(lines[at[0]].strip()) or {}).get("group_column") == group:
        return lines  # unchanged: the line (and its comment) stays as it is
    value = yaml.safe_dump(group, default_flow_style=True).strip().removesuffix("...").strip()
    lines[at[0]] = f"{f'  group_column: {value}':<28} # written by `new`: {why}"
    return lines


def edit(params_text: str, name: str, block_text: str, slug: str,
         group: tuple[str | None, str] | None = None,
         augment: tuple[str, str] = (AUGMENT, AUGMENT_NOTE)) -> str:
    lines = params_text.splitlines()
    if group is not None:
        lines = _group_line(lines, *group)
    key = yaml.safe_dump(name, default_flow_style=True).strip().removesuffix("...").strip()
    lines = _put(lines, "competitions", name, block_text.rstrip("\n").splitlines())
    lines = _put(lines, "augment", name, [f"  {key}: {augment[0]}  # {augment[1]}"])
    lines = _put(lines, "kaggle", name, [f"  {key}: {slug}  # fetch downloads and make submit uploads there"])
    comp = [i for i, ln in enumerate(lines) if re.match(r"^competition\s*:", ln)]
    if len(comp) != 1:
        raise UserError("params.yaml: no top-level `competition:` line to set")
    old = lines[comp[0]]
    note = old.partition("#")[2]
    lines[comp[0]] = f"{f'competition: {key}':<28} #{note}" if note else f"competition: {key}"
    return "\n".join(lines) + "\n"


def main(name: str, metric: str, params_path: Path, raw: Path | None, force: bool,
         sets: list[str] | None = None) -> None:
    if not re.fullmatch(NAME, name):
        raise UserError(f"new: {name!r} is no competition name: use its Kaggle slug (letters, "
                        "digits, '-', '_')")
    try:
        check_metric_name(metric)
    except ValueError as e:
        raise UserError(f"--metric: {e}") from None
    params_path = Path(params_path)
    if not params_path.is_file():
        raise UserError(f"{params_path}: not found (run from the repository root)")
    text = params_path.read_text()
    current = yaml.safe_load(text) or {}
    if name in (current.get("competitions") or {}) and not force:
        raise UserError(f"competitions.{name} exists in {params_path}: --force rewrites it")
    raw_dir = Path(raw) if raw else Path("data/raw") / name
    if not raw_dir.is_dir() or not any(p for p in raw_dir.iterdir() if not p.name.startswith(".")):
        raise UserError(f"{raw_dir}/: no files; put what Kaggle ships there first: "
                        f"`mkdir -p {raw_dir} && kaggle competitions download -c {name} -p "
                        f"{raw_dir}` (or the files unpacked)")
    tree = Tree.listing(raw_dir)
    overrides = parse_sets(sets or [])
    found = (detect_arrays(name, metric, tree, overrides)
             or detect_targets(name, metric, tree, overrides)
             or infer(name, metric, tree, overrides))
    for key, value in overrides.items():
        if key == "folds.group_column":  # a global knob, not part of the block
            continue
        _set(found.block, key, value)
        found.comments[key] = "--set"
    try:
        block = CompetitionBlock.model_validate(found.block)
    except Exception as e:  # pydantic's report, in one line
        raise UserError(f"new: the inferred block does not validate ({_first(e)}); set the key "
                        "with --set") from None
    listing = resolve(block, tree, name)  # the data through the block, exactly as prepare
    sample = sample_table(block, tree, name)
    if "submission.unseen_label" not in overrides:
        block = _unseen_label(found, block, listing.classes, sample.frame if sample else None)
    check_sample_labels(block, listing.classes, sample.frame if sample else None)
    new_text = edit(text, name, render(name, found.block, found.comments, raw_dir), name,
                    (found.group_column, found.group_why),
                    ARRAY_AUGMENT if "decode" in found.block else (AUGMENT, AUGMENT_NOTE))
    check = yaml.safe_load(new_text)
    if check["competitions"][name] != found.block:
        raise UserError("new: the block did not survive YAML's round trip; please report this")
    parse_params(check, str(params_path)).train.check_labels(name, block.multilabel,
                                                             block.numeric)
    write_text(params_path, new_text)
    for line in listing.notes + found.notes + preview(listing.rows, listing.classes,
                                                      listing.multilabel, listing.numeric,
                                                      listing.heads) \
            + unused_images(tree, listing, block):
        print(f"new: {line}")
    print(f"new: wrote competitions.{name}, augment.{name}, kaggle.{name} and "
          f"folds.group_column into {params_path}; competition: {name}. Next: `make all` (image_size and train.models are yours to "
          "set: the digits defaults are 32 px and a small CNN)")


def _unseen_label(found, block: CompetitionBlock, classes: list[str], sample) -> CompetitionBlock:
    """The block with submission.unseen_label set where the sample's labels hold exactly one
    token that no train image has (happywhale's `new_individual`), said in a comment and a note;
    else the block as it is."""
    token = unseen_token(block, classes, sample)
    if token is None:
        return block
    found.block["submission"]["unseen_label"] = token
    found.comments["submission.unseen_label"] = (
        "inferred: the one label of the sample that no train image has (null: a stop)")
    found.notes.append(f"submission.unseen_label: {token} (the sample's one label that no train "
                       "image has) is written where the ensemble is unsure, below a threshold "
                       "fitted on OOF rows; --set submission.unseen_label=null stops instead")
    return CompetitionBlock.model_validate(found.block)


def unused_images(tree: Tree, listing, block: CompetitionBlock) -> list[str]:
    """One line naming the images the block neither trains on nor predicts (cervical's
    additional_Type_*_v2 folders of more labelled images): left out, said, not silent. Array
    samples are rows of other files (a stack's bands): not counted."""
    if block.test.samples is not None:
        return []
    used = set(listing.rows["path"])
    unused = [q for q in tree.images["path"] if q not in used]
    if not unused:
        return []
    folders = Counter(q.rpartition("/")[0] or "." for q in unused)
    shown = ", ".join(f"{d}/ ({n:,})" for d, n in folders.most_common(5))
    more = f" and {len(folders) - 5} more folders" if len(folders) > 5 else ""
    return [f"not used: {len(unused):,} image(s) the block neither trains on nor predicts, in "
            f"{shown}{more} (more labelled images become a train source of their own: "
            "--set 'train=[...]')"]


def _first(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return "; ".join(lines[1:3]) if len(lines) > 1 else (lines[0] if lines else type(e).__name__)
