"""Pretrained weights are a fetched, tracked input (stage `weights`), tested against a hub on
127.0.0.1 that speaks enough of the Hugging Face file protocol for huggingface_hub (HEAD with
X-Repo-Commit, ETag and Content-Length; GET with Range; 404 with X-Error-Code). It serves the
weights of timm's small `test_resnet`, made here with random values. No test reaches a real hub.
"""

import hashlib
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from helpers import REPO, env_for, make_project, merge, ran_stages, run, set_params

ARCH = "test_resnet.r160_in1k"  # timm's own tiny test model, with an hf_hub_id
REPO_ID = "timm/test_resnet.r160_in1k"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Hub:
    """A stand-in hub: {repo/filename: bytes}; records each request as (method, path)."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.requests = files, []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _file(self):
                hub.requests.append((self.command, self.path))
                parts = self.path.split("?")[0].strip("/").split("/")
                # /<org>/<name>/resolve/<revision>/<filename>
                if len(parts) >= 5 and parts[2] == "resolve":
                    return "/".join(parts[:2]) + "/" + "/".join(parts[4:])
                return None

            def _headers(self, key, body, status=200, length=None):
                self.send_response(status)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest() + '"')
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()

            def _missing(self):
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("X-Error-Message", "Entry not found")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_HEAD(self):
                key = self._file()
                if key not in hub.files:
                    return self._missing()
                self._headers(key, hub.files[key])

            def do_GET(self):
                key = self._file()
                if key not in hub.files:
                    return self._missing()
                body = hub.files[key]
                start = 0
                if (rng := self.headers.get("Range", "")).startswith("bytes="):
                    start = int(rng[6:].split("-")[0] or 0)
                part = body[start:]
                self._headers(key, body, 206 if start else 200, len(part))
                self.wfile.write(part)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def gets(self) -> int:
        return sum(1 for method, _ in self.requests if method == "GET")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def weights_bytes(tmp_path_factory):
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model(ARCH, pretrained=False)  # 1000 classes, 3 channels: the hub's
    path = tmp_path_factory.mktemp("hubfile") / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path.read_bytes()


@pytest.fixture
def hub(weights_bytes):
    h = Hub({f"{REPO_ID}/model.safetensors": weights_bytes})
    yield h
    h.close()


def params_for(project: Path, **spec) -> None:
    set_params(project, models={"tr": {"arch": ARCH, "pretrained": True, **spec}},
               train={"models": ["tr"]})


def hub_env(project: Path, endpoint: str, hf_home: Path) -> dict:
    env = env_for(project)
    for key in [k for k in env if k.startswith("HF_")]:
        del env[key]
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(hf_home), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_ETAG_TIMEOUT="5", HF_HUB_DOWNLOAD_TIMEOUT="5")
    return env


def weights_cli(project: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imgcomp", "weights", "--model", "tr", "--out",
                           "models/pretrained/tr"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path / "p")


def test_download_once_pin_and_offline(project, hub, weights_bytes, tmp_path):
    env = hub_env(project, hub.url, tmp_path / "hf")
    params_for(project)
    first = weights_cli(project, env)
    assert first.returncode == 0, first.stderr[-2000:]
    out = project / "models/pretrained/tr"
    assert (out / "weights.safetensors").read_bytes() == weights_bytes  # the hub's bytes
    sha = hashlib.sha256(weights_bytes).hexdigest()
    source = json.loads((out / "source.json").read_text())
    assert source["sha256"] == sha and source["from"] == f"hf://{REPO_ID}/model.safetensors"
    assert hub.gets() == 1
    # a second fetch into another folder: huggingface_hub's cache, no second download
    again = subprocess.run([sys.executable, "-m", "imgcomp", "weights", "--model", "tr", "--out",
                            "models/pretrained/tr2"], cwd=project, env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert hub.gets() == 1
    # a pin that differs: one line, and the folder as it was (nothing written)
    params_for(project, sha256="0" * 64)
    bad = weights_cli(project, env)
    assert bad.returncode == 2 and "not the pinned" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr
    assert json.loads((out / "source.json").read_text())["sha256"] == sha
    params_for(project, sha256=sha)
    assert weights_cli(project, env).returncode == 0


def test_hub_down_with_and_without_the_file(project, weights_bytes, tmp_path):
    env = hub_env(project, "http://127.0.0.1:9", tmp_path / "hf")  # nothing listens there
    params_for(project)
    proc = weights_cli(project, env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert line.count("\n") == 0 and "models/pretrained/tr/weights.safetensors" in line
    assert "pretrained_file" in line and "reaches it" in line
    assert not (project / "models/pretrained/tr").exists()
    local = tmp_path / "mine.safetensors"  # the weights, brought by hand: works offline
    local.write_bytes(weights_bytes)
    params_for(project, pretrained_file=str(local))
    proc = weights_cli(project, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (project / "models/pretrained/tr/weights.safetensors").read_bytes() == weights_bytes


def test_food11_rules_forbid_pretrained_unless_overridden():
    from imgcomp.errors import UserError
    from imgcomp.params import parse_params

    base = yaml.safe_load((REPO / "params.yaml").read_text())
    raw = merge(base, {"competition": "food11", "models": {"tr": {"arch": ARCH, "pretrained": True}},
                       "train": {"models": ["tr"]}})
    with pytest.raises(UserError, match=r"food11's rules forbid pretrained weights"):
        parse_params(raw)
    parse_params(merge(raw, {"rules": {"no_pretrained": []}}))  # the explicit override
    parse_params(merge(raw, {"competition": "cat_dog"}))  # other competitions allow them


@pytest.mark.e2e
def test_pretrained_model_from_the_hub_end_to_end(project, hub, tmp_path):
    """digits with a pretrained timm model: weights fetched once by `dvc repro`, recorded in
    dvc.lock; training, predict and submit run from them; a rerun fetches and reruns nothing."""
    env = hub_env(project, hub.url, tmp_path / "hf")
    params_for(project)
    set_params(project, train={"epochs": 1, "batch_size": 64})
    first = run(["dvc", "repro"], project, env=env)
    assert "weights@tr" in ran_stages(first) and "submit" in ran_stages(first)
    assert (project / "submissions/digits.csv").is_file()
    assert hub.gets() == 1
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    outs = lock["stages"]["weights@tr"]["outs"]
    assert outs[0]["path"] == "models/pretrained/tr" and outs[0]["md5"]
    assert any(d["path"] == "models/pretrained/tr" for d in lock["stages"]["train@tr"]["deps"])
    sha = json.loads((project / "models/pretrained/tr/source.json").read_text())["sha256"]
    assert sha == hashlib.sha256((project / "models/pretrained/tr/weights.safetensors")
                                 .read_bytes()).hexdigest()
    assert lock["stages"]["train@tr"]["params"]["models/pretrained/tr/source.json"] == {
        "sha256": sha}  # the weights' sha256 itself is in dvc.lock
    from imgcomp.inference import checkpoint

    card = checkpoint.read_card(project / "models/digits/tr/f0.safetensors")
    assert card.mean == pytest.approx([0.5])  # its pretrained_cfg's, folded to one channel
    second = run(["dvc", "repro"], project, env=env)
    assert ran_stages(second) == [] and hub.gets() == 1


def test_the_readmes_worked_examples_are_valid_params():
    import re

    from imgcomp.params import parse_params

    text = (REPO / "README.md").read_text()
    block = re.search(r"Two worked examples:\n\n```yaml\n(.*?)```", text, re.S).group(1)
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    examples = [yaml.safe_load(part) for part in block.split("\n\n")]
    assert [e["competition"] for e in examples] == ["cat_dog", "palm"]
    for example in examples:
        params = parse_params(merge(base, example))
        name = params.train.models[0]
        assert params.model_spec(name).pretrained and params.train.freeze_epochs >= 1
