"""Where a whole run's time goes: `dvc repro -f` of a project in a scratch copy, its wall time,
the seconds spent inside training's epoch loops (summed from dvclive's `time/epoch_s`), their
ratio, and each stage's time outside its epochs, largest first.

    python benchmarks/run_shape.py [--set KEY=VALUE ...] [--raw DIR] [--out JSON]

Every output line of `dvc repro` is stamped as it arrives; a stage's time runs from its
"Running stage" line to the next one (or the end), so DVC's bookkeeping between stages counts
toward the stage before it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def scratch_project(root: Path, overrides: dict, raw: Path | None = None) -> Path:
    """A git + DVC copy of the project (dvc.yaml, params.yaml with `overrides`, sources)."""
    import yaml

    for name in ("dvc.yaml", ".dvcignore", "requirements.lock", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__",
                                                                             "*.egg-info"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in overrides.items():
        node = params
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if raw is not None:
        shutil.copytree(raw, root / "data/raw" / params["competition"])
    git = ["git", "-c", "user.email=bench@localhost", "-c", "user.name=bench"]
    for argv in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"],
                 ["git", "add", "-A"], [*git, "commit", "-qm", "bench"]):
        subprocess.run(argv, cwd=root, check=True, capture_output=True)
    return root


def timed_repro(root: Path) -> tuple[float, list[tuple[float, str]]]:
    env = dict(os.environ, PYTHONPATH=str(root / "src"), NO_ALBUMENTATIONS_UPDATE="1",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "-f"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = [(time.perf_counter() - start, line.rstrip("\n")) for line in proc.stdout]
    if proc.wait():
        raise RuntimeError("dvc repro failed:\n" + "\n".join(l for _, l in lines[-40:]))
    return time.perf_counter() - start, lines


def epoch_seconds(root: Path) -> dict[str, float]:
    """Seconds inside the epoch loop per dvclive curve folder (one per trained model and fold)."""
    out = {}
    for tsv in sorted((root / "dvclive").rglob("epoch_s.tsv")):
        rows = tsv.read_text().splitlines()[1:]
        out[tsv.parent.relative_to(root / "dvclive").as_posix()] = sum(
            float(r.split("\t")[-1]) for r in rows)
    return out


def shape(wall: float, lines: list[tuple[float, str]], epochs: dict[str, float]) -> dict:
    marks = [(t, line.split("'")[1]) for t, line in lines if line.startswith("Running stage '")]
    stages = {}
    for (t, name), nxt in zip(marks, [m[0] for m in marks[1:]] + [wall]):
        stages[name] = stages.get(name, 0.0) + nxt - t
    inside = sum(epochs.values())
    outside = dict(stages)
    for item, seconds in epochs.items():  # the epochs of a train stage are not its overhead
        for name in outside:
            if name.startswith("train") and _owns(name, item):
                outside[name] -= seconds
                break
    return {"wall_s": round(wall, 1), "epoch_loop_s": round(inside, 1),
            "epoch_share": round(inside / wall, 3), "before_first_stage_s": round(marks[0][0], 1),
            "stages_s": {k: round(v, 1) for k, v in stages.items()},
            "outside_epochs_s": dict(sorted(((k, round(v, 1)) for k, v in outside.items()),
                                            key=lambda kv: -kv[1]))}


def _owns(stage: str, item: str) -> bool:
    """Whether the curves folder `item` (<competition>/<model>-f<k>/... for an item per fold,
    <competition>/<model>/plots/metrics/f<k>/... for an item per model) is `stage`'s."""
    tail = stage.partition("@")[2]  # lenet-0 (an item per fold) or lenet (one per model)
    first = item.split("/")[1]
    if "-" in tail and tail.rsplit("-", 1)[1].isdigit():
        model, fold = tail.rsplit("-", 1)
        return first == f"{model}-f{fold}"
    return first == tail


def scores(root: Path) -> dict:
    """The run's CV score and, where the competition has local answers, its held-out score."""
    cv = json.loads((root / "metrics/cv.json").read_text())
    out = {"metric": cv["metric"], "cv": cv["ensemble"][cv["metric"]], "cv_images": cv["images"]}
    board = json.loads((root / "metrics/leaderboard.json").read_text())
    if "test" in board:
        out["test"] = board["test"][cv["metric"]]
    return out


def measure(overrides: dict, raw: Path | None = None, log: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="imgcomp-run-shape-") as tmp:
        root = scratch_project(Path(tmp), overrides, raw)
        wall, lines = timed_repro(root)
        if log is not None:
            log.write_text("".join(f"{t:8.2f} {line}\n" for t, line in lines))
        return {**shape(wall, lines, epoch_seconds(root)), "scores": scores(root)}


def main(argv: list[str] | None = None) -> int:
    import yaml

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--raw", type=Path, help="the competition's raw folder, copied in")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--log", type=Path, help="write dvc repro's output, each line stamped")
    args = ap.parse_args(argv)
    overrides = {k: yaml.safe_load(v) for k, _, v in (s.partition("=") for s in args.set)}
    result = measure(overrides, args.raw, args.log)
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
