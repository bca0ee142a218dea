"""What one training step of a model costs here, with the recipe in params.yaml (mixup,
erasing, EMA, AMP as the device gives): images per second over a few steps after a warm-up,
on synthetic batches. For the README's "what it costs" figures of the worked examples.
usage: python scripts/step_cost.py ARCH IMAGE_SIZE BATCH [STEPS] [--device=cpu|cuda] [--frozen]
(--frozen: a train.freeze_epochs step, the body frozen, the head alone trained)"""
import sys
import time

import torch
import yaml

from imgcomp.models import create_model
from imgcomp.params import parse_params
from imgcomp.stages.common import placement
from imgcomp.stages.train import step_config
from imgcomp.training.device import runtime
from imgcomp.training.step import Stepper

args = [a for a in sys.argv[1:] if not a.startswith("--")]
frozen = "--frozen" in sys.argv
device = next((a.split("=")[1] for a in sys.argv[1:] if a.startswith("--device=")), "auto")
arch, size, batch = args[0], int(args[1]), int(args[2])
steps = int(args[3]) if len(args) > 3 else 5
raw = yaml.safe_load(open("params.yaml"))
raw["train"].update(device=device, batch_size=batch, freeze_epochs=int(frozen),
                    epochs=max(2, raw["train"]["epochs"]))
cfg = parse_params(raw).train
rt = runtime(placement(cfg))
model = create_model(arch, 2, 3, size)
stepper = Stepper(step_config(cfg, 2), model, rt, steps + 1)
stepper.freeze_body(frozen)
x = torch.randn(batch, 3, size, size, device=rt.device)
y = torch.randint(0, 2, (batch,), device=rt.device)
sync = torch.cuda.synchronize if rt.device.type == "cuda" else (lambda: None)
stepper.update(stepper.loss(x, y))  # warm-up
sync()
start = time.perf_counter()
for s in range(steps):
    stepper.update(stepper.loss(x, y))
sync()
took = time.perf_counter() - start
print(f"{arch} {size}px batch {batch}{' frozen body' if frozen else ''} on {rt.device} ({torch.get_num_threads()} threads): "
      f"{steps * batch / took:.1f} images/s ({took / steps:.2f} s a step)")
