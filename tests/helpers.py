"""Builders for test data in each competition's exact raw layout, and a local HTTP server."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import sys
import threading
import zipfile
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def augment(**over):
    """An augmentation that changes nothing but what `over` sets."""
    from imgcomp.data.augment import AugmentSpec

    neutral = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.0, vflip=0.0, rotate=0.0,
                   color_jitter=0.0)
    return AugmentSpec.of({**neutral, **over})


def random_cache(folder: Path, n: int, side: int) -> tuple[Path, np.ndarray]:
    """A uint8 cache file (n, side, side, 3) of seeded noise, as prepare writes it, and its array."""
    arr = np.random.default_rng(0).integers(0, 255, (n, side, side, 3), dtype=np.uint8)
    np.save(folder / "c.npy", arr)
    return folder / "c.npy", arr


def jpeg_bytes(seed: int, size=(40, 36), mode="RGB", fmt="JPEG") -> bytes:
    """A small image whose content depends on `seed` (a class can be told by its colour)."""
    rng = np.random.default_rng(seed)
    base = np.zeros((size[1], size[0], 3), np.uint8)
    base[..., seed % 3] = 200
    noise = rng.integers(0, 40, base.shape, dtype=np.uint8)
    im = Image.fromarray(base + noise)
    if mode != "RGB":
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(60)


def desktop_junk(members: dict[str, bytes]) -> dict[str, bytes]:
    """`members` as a desktop re-packs them: macOS's Archive Utility adds an AppleDouble twin
    under __MACOSX/ for every entry and .DS_Store in folders; Windows adds Thumbs.db and
    desktop.ini."""
    out = dict(members)
    folders = set()
    for name in members:
        parts = name.split("/")
        out["/".join(["__MACOSX", *parts[:-1], "._" + parts[-1]])] = APPLEDOUBLE
        folders.update("/".join(parts[:k]) for k in range(1, len(parts)))
    for folder in sorted(folders):
        out[f"{folder}/.DS_Store"] = b"\x00\x00\x00\x01Bud1" + bytes(32)
        out[f"{folder}/Thumbs.db"] = b"\xd0\xcf\x11\xe0" + bytes(60)
        out[f"{folder}/desktop.ini"] = b"[.ShellClassInfo]\r\n"
    return out


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _rar4_block(head_type: int, flags: int, body: bytes) -> bytes:
    size = 7 + len(body)
    rest = struct.pack("<BHH", head_type, flags, size) + body
    return struct.pack("<H", zlib.crc32(rest) & 0xFFFF) + rest


def write_rar4(path: Path, members: dict[str, bytes], solid: bool = False) -> Path:
    """A RAR 4.x archive with stored (uncompressed) entries, written from the format's technote:
    marker block, main header, one file header (with CRC) per member, end-of-archive block."""
    out = bytearray(b"Rar!\x1a\x07\x00")
    out += _rar4_block(0x73, 0x0008 if solid else 0x0000, b"\x00" * 6)
    for name, data in members.items():
        raw = name.encode()
        body = struct.pack(
            "<IIBIIBBHI", len(data), len(data), 3, zlib.crc32(data), 0x5A210000, 29, 0x30,
            len(raw), 0o100644,
        ) + raw
        out += _rar4_block(0x74, 0x8000, body) + data
    out += _rar4_block(0x7B, 0x4000, b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path


def cat_dog_archive(raw: Path, n_train: int = 12, n_val: int = 4, n_test: int = 12,
                    rar: int = 4, junk: bool = False) -> Path:
    members = {}
    for i in range(n_train):
        cls = ("cat", "dog")[i % 2]
        sep = (".", "_", "")[i % 3]
        members[f"cat_dog/train/{cls}{sep}{i}.jpg"] = jpeg_bytes(i % 2)
    for i in range(n_val):
        cls = ("cat", "dog")[i % 2]
        members[f"cat_dog/val/{cls}.{1000 + i}.jpg"] = jpeg_bytes(i % 2)
    # archive order deliberately not numeric order: 0, 1, 10, 11, 2, ...
    for i in sorted(range(n_test), key=str):
        members[f"cat_dog/test/{i}.jpg"] = jpeg_bytes(i % 2)
    members = desktop_junk(members) if junk else members
    return (write_rar4 if rar == 4 else write_rar5)(raw / "cat_dog.rar", members)


def food11_archive(raw: Path, edition: str = "new", per_class: int = 2, n_test: int = 6,
                   junk: bool = False) -> Path:
    train, valid, first = (("training", "validation", 1) if edition == "old" else ("train", "valid", 0))
    members = {}
    for c in range(11):
        for n in range(per_class):
            members[f"food11/{train}/{c}_{n}.jpg"] = jpeg_bytes(c)
            members[f"food11/{valid}/{c}_{n}.jpg"] = jpeg_bytes(c)
    for i in range(first, first + n_test):
        members[f"food11/test/{i:04d}.jpg"] = jpeg_bytes(i)
    return write_zip(raw / "food11.zip", desktop_junk(members) if junk else members)


def palm_archives(raw: Path, n_train: int = 12, n_valid: int = 8, n_test: int = 6,
                  junk: bool = False) -> list[Path]:
    import pandas as pd

    def zip_(path, members):
        return write_zip(path, desktop_junk(members) if junk else members)

    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        photos = {f"PALM-Training400/{'PHN'[i % 3]}{i:04d}.jpg":
                  jpeg_bytes(int("PHN"[i % 3] == "P"), (64, 60)) for i in range(n_train)}
        for name, data in (desktop_junk(photos) if junk else photos).items():
            z.writestr(name, data)
    out = [zip_(raw / "training.zip", {"PALM-Training400/PALM-Training400.zip": inner.getvalue()})]
    out.append(zip_(raw / "validation.zip", {
        f"PALM-Validation400/V{i:04d}.jpg": jpeg_bytes(i % 2, (64, 60)) for i in range(1, n_valid + 1)}))
    sheet = io.BytesIO()
    pd.DataFrame({"ID": range(1, n_valid + 1),
                  "imgName": [f"V{i:04d}.jpg" for i in range(1, n_valid + 1)],
                  "Label": [i % 2 for i in range(1, n_valid + 1)],
                  "Fovea_X": 1.0, "Fovea_Y": 2.0}).to_excel(sheet, index=False)
    out.append(zip_(raw / "valid_gt.zip",
                    {"PALM-Validation-GT/PM_Label_and_Fovea_Location.xlsx": sheet.getvalue()}))
    out.append(zip_(raw / "PALM-Testing400-Images.zip", {
        f"PALM-Testing400/T{i:04d}.jpg": jpeg_bytes(i % 2, (64, 60)) for i in range(1, n_test + 1)}))
    return out


TINY = {
    "image_size": 32,
    "folds": {"n_splits": 2, "seed": 1, "run": [0, 1]},
    "train": {"epochs": 1, "batch_size": 16, "device": "cpu"},  # CPU behaviour: pinned
    "predict": {"batch_size": 64},
}


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def dvc_cache_type() -> str:
    """cache.type as the repository's .dvc/config sets it."""
    import configparser

    config = configparser.ConfigParser()
    config.read(REPO / ".dvc/config")
    return config["cache"]["type"]


GIT = ["git", "-c", "user.email=test@localhost", "-c", "user.name=test"]


def make_project(tmp: Path, scm: bool = False, **overrides) -> Path:
    """A copy of the pipeline (dvc.yaml, params.yaml, sources) in `tmp`, as a DVC repo; with
    `scm`, inside a git repository (the project's .gitignore, one commit), as a user's clone."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params = merge(params, TINY)
    params = merge(params, overrides)
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dvc.yaml", tmp / "dvc.yaml")
    shutil.copytree(REPO / "src", tmp / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / ".dvcignore", tmp / ".dvcignore")
    shutil.copy(REPO / "requirements.lock", tmp / "requirements.lock")  # package's pins
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if scm:
        shutil.copy(REPO / ".gitignore", tmp / ".gitignore")
        run(["git", "init", "-q"], tmp)
    run(["dvc", "init", "-q"] + ([] if scm else ["--no-scm"]), tmp)
    run(["dvc", "config", "core.analytics", "false"], tmp)
    run(["dvc", "config", "cache.type", dvc_cache_type()], tmp)  # the project's own cache links
    if scm:
        run(["git", "add", "-A"], tmp)
        run([*GIT, "commit", "-qm", "pipeline"], tmp)
    return tmp


def prepared_digits(root: Path, raw_params: dict) -> Path:
    """fetch, prepare and folds of digits under `root` (raw/, prepared/, folds.csv), in process,
    with `raw_params` also written to root/params.yaml: what a train or predict test starts from."""
    from imgcomp.params import parse_params
    from imgcomp.stages import fetch, folds, prepare

    params = parse_params(raw_params)
    fetch.main(params, root / "raw")
    prepare.main(params, root / "raw", root / "prepared")
    folds.main(params, root / "prepared", root / "folds.csv")
    (root / "params.yaml").write_text(yaml.safe_dump(raw_params))
    return root


def set_params(project: Path, **overrides) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    (project / "params.yaml").write_text(yaml.safe_dump(merge(params, overrides), sort_keys=False))


def env_for(project: Path) -> dict:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = str(project / "src")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["NO_ALBUMENTATIONS_UPDATE"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run(argv: list[str], cwd: Path, check: bool = True, env: dict | None = None,
        timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                          env=env or env_for(cwd), timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def imgcomp(args: list[str], cwd: Path, check: bool = False) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "imgcomp", *args], cwd, check=check)


def ran_stages(proc: subprocess.CompletedProcess) -> list[str]:
    return [line.split("'")[1] for line in proc.stdout.splitlines()
            if line.startswith("Running stage '")]


class _Handler(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    cut_once: dict[str, int] = {}  # path -> bytes to send before dropping the first request
    requests: list[tuple[str, str | None]] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        data = self.files.get(self.path)
        self.requests.append((self.path, self.headers.get("Range")))
        if data is None:
            self.send_error(404)
            return
        start = 0
        if rng := self.headers.get("Range"):
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.cut_once.pop(self.path, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


class LocalServer:
    """An HTTP server on 127.0.0.1 (an ephemeral port) serving in-memory files, with Range."""

    def __init__(self):
        handler = type("H", (_Handler,), {"files": {}, "cut_once": {}, "requests": []})
        self.handler = handler
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def serve(self, path: str, data: bytes, cut_first_after: int | None = None) -> str:
        self.handler.files[path] = data
        if cut_first_after is not None:
            self.handler.cut_once[path] = cut_first_after
        return self.url(path)


def _vint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _rar5_block(fields: bytes, data: bytes = b"") -> bytes:
    body = fields
    size = _vint(len(body))
    return struct.pack("<I", zlib.crc32(size + body)) + size + body + data


def write_rar5(path: Path, members: dict[str, bytes]) -> Path:
    """A RAR 5.0 archive with stored entries, from the format's technote: signature, main
    archive header, a file header (data CRC32, method 0) per member, end-of-archive header."""
    out = bytearray(b"Rar!\x1a\x07\x01\x00")
    out += _rar5_block(_vint(1) + _vint(0) + _vint(0))  # main: type 1, no flags, archive flags 0
    for name, data in members.items():
        raw = name.encode()
        fields = (_vint(2) + _vint(0x0002) + _vint(len(data))  # file, has data area, data size
                  + _vint(0x0004) + _vint(len(data)) + _vint(0o100644)  # CRC present, size, attrs
                  + struct.pack("<I", zlib.crc32(data)) + _vint(0) + _vint(1)  # store; Unix
                  + _vint(len(raw)) + raw)
        out += _rar5_block(fields, data)
    out += _rar5_block(_vint(5) + _vint(0) + _vint(0))  # end of archive
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path


# A model card and a package spec as imgcomp writes them (artifacts/cards.py), for tests that
# need one without a pipeline run.
CARD = dict(card=1, model="lenet", fold=0, arch="lenet", args={"width": 4}, num_classes=10,
            in_chans=1, image_size=32, mean=[0.5], std=[0.25], interpolation="bilinear",
            classes=[str(d) for d in range(10)], metric="accuracy", score=0.9, best_epoch=3,
            epochs_run=3, config={"fold": 0}, history=[{"epoch": 1, "train/loss": 1.0}])


def package_spec(**over) -> dict:
    from imgcomp.artifacts.cards import PACKAGE_FORMAT

    return {"format": PACKAGE_FORMAT, "imgcomp": "0.1.0", "competition": "digits",
            "competition_block": {}, "submission": {}, "post": None, "classes": CARD["classes"],
            "channels": 1, "image_size": 32, "cache_side": 37, "max_extract_gb": 1.0,
            "tta": ["identity"], "ensemble": {"method": "mean", "weights": {"lenet": 1.0}},
            "predict": {"batch_size": 8, "precision": "auto", "channels_last": True,
                        "deterministic": True}, "cv": {"accuracy": 0.9},
            "items": [{"file": "lenet-f0.safetensors", "sha256": "0" * 64, "card": CARD}], **over}


def block_of(params, name: str | None = None):
    """A competition's block of loaded params, validated as the stages that read it do."""
    from imgcomp.competitions.block import load_block

    name = name or params.competition
    return load_block(name, params.competitions[name])


def read_pred(folder, part: str):
    """(ids, array) of a prediction a stage wrote (`<part>.ids`, `<part>.npy`), read with numpy
    alone, not through the code under test."""
    import numpy as np

    folder = Path(folder)
    ids = (folder / f"{part}.ids").read_text().splitlines()
    return ids, np.load(folder / f"{part}.npy")
