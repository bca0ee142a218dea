import pytest
import torch
import torch.nn as nn

from imgcomp.errors import UserError
from imgcomp.models import CUSTOM, create_model
from imgcomp.training.step import combined_loss

VARIANTS = [
    ("lenet", {}), ("lenet", {"width": 2, "batch_norm": True}), ("alexnet", {"width": 0.25}),
    ("vgg", {"depth": 11, "width": 0.125}), ("vgg", {"depth": 19, "width": 0.125}),
    ("googlenet", {"aux_logits": True}), ("googlenet", {}),
    ("resnet", {"depth": 18, "width": 8}), ("resnet", {"depth": 34, "width": 8}),
    ("resnet", {"depth": 50, "width": 8}), ("resnet", {"depth": 18, "width": 8, "small_stem": False}),
    ("food_cnn", {}), ("linear", {"pool": 4}), ("resnet18", {}),  # the last one is timm's
]


def test_every_custom_model_is_covered():
    assert {a for a, _ in VARIANTS} >= set(CUSTOM)


@pytest.mark.parametrize("arch, args", VARIANTS, ids=lambda v: str(v))
@pytest.mark.parametrize("num_classes, in_chans, size", [(10, 1, 32), (1, 3, 40), (2, 3, 64)])
def test_trains_one_step_and_predicts(arch, args, num_classes, in_chans, size):
    torch.manual_seed(0)
    model = create_model(arch, num_classes, in_chans, size, args=args)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(4, in_chans, size, size)
    y = torch.randint(0, max(num_classes, 2), (4,))
    loss_fn = (lambda o, t: nn.functional.binary_cross_entropy_with_logits(o[:, 0], t.float())
               if num_classes == 1 else nn.functional.cross_entropy(o, t))
    model.train()
    loss = combined_loss(model(x), y, loss_fn)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (4, num_classes)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(UserError, match="unknown model 'resnet1800'"):
        create_model("resnet1800", 10, 3, 32)


def test_pretrained_missing_offline_says_where_to_put_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="not on this machine.*pretrained_file"):
        create_model("resnet18", 2, 3, 32, pretrained=True)


def test_pretrained_from_local_file(tmp_path):
    src = create_model("resnet18", 1000, 3, 64)
    path = tmp_path / "r18.pth"
    torch.save(src.state_dict(), path)
    model = create_model("resnet18", 5, 3, 64, pretrained=True, pretrained_file=str(path))
    assert torch.equal(model.conv1.weight, src.conv1.weight)
    assert model.get_classifier().out_features == 5


def test_custom_model_rejects_pretrained():
    with pytest.raises(UserError, match="no pretrained weights"):
        create_model("lenet", 10, 1, 32, pretrained=True)


def test_custom_names_never_shadow_a_timm_model():
    import timm

    from imgcomp.models import CUSTOM

    assert not set(CUSTOM) & set(timm.list_models()), "a timm name would silently get ours"


def test_pretrained_weights_are_never_downloaded_at_run_time(tmp_path):
    """A stand-in hub on 127.0.0.1 that would answer: the README's claim holds only if train
    asks it nothing, even with HF_HUB_OFFLINE unset, and says where to put the weights."""
    import os
    import subprocess
    import sys
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    asked = []

    class Hub(BaseHTTPRequestHandler):
        def do_HEAD(self):
            asked.append(self.path)
            self.send_response(404)
            self.end_headers()

        do_GET = do_HEAD

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{server.server_port}", HF_HOME=str(tmp_path / "hf"),
               TORCH_HOME=str(tmp_path / "torch"))
    code = ("from imgcomp.models import create_model\n"
            "from imgcomp.errors import UserError\n"
            "try:\n    create_model('resnet18', 2, 3, 32, pretrained=True)\n"
            "except UserError as e:\n    print('USERERROR', e)\n")
    try:
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=300)
    finally:
        server.shutdown()
    assert "USERERROR pretrained weights for resnet18 are not on this machine" in proc.stdout, \
        proc.stderr[-2000:]
    assert "pretrained_file" in proc.stdout
    assert asked == []  # nothing was asked of the hub


def test_the_custom_names_read_from_the_code_are_the_registrys():
    from imgcomp.models import CUSTOM
    from imgcomp.model_names import custom_names

    assert custom_names() == set(CUSTOM) and "lenet" in custom_names()
