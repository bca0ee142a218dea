"""Where the device pipeline's time goes (on CUDA, else CPU): the augmentation alone with a
profiler table, then the step with each extra (mixup, erasing, EMA) on one at a time, then the
whole pipeline. Run from the project root: `python scripts/profile_step.py /tmp/prof`.
The README's GPU notes quote one run of it on an H100. The recipe and the bare step's config
come from tests/support.py, as the bench's do."""
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support import bare_train, food11_augment, user_train  # noqa: E402

from imgcomp.data.batch_aug import BatchAugment  # noqa: E402
from imgcomp.data.feed import DeviceFeed, Images  # noqa: E402
from imgcomp.models import create_model  # noqa: E402
from imgcomp.stages.common import placement  # noqa: E402
from imgcomp.stages.train import step_config  # noqa: E402
from imgcomp.training.device import runtime  # noqa: E402
from imgcomp.training.step import Stepper  # noqa: E402

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
rng = np.random.default_rng(0)
N = 3000 if dev.type == 'cuda' else 300
cache = out / "cache.npy"
np.save(cache, rng.integers(0, 256, (N, 147, 147, 3), dtype=np.uint8))
aug = food11_augment()
images = Images(cache, dev, "auto")
augment = BatchAugment(aug, 128, [0.5] * 3, [0.25] * 3, True)
gen = np.random.default_rng(0)
rows = torch.arange(256, device=dev)


def timed(fn, reps=30):
    for _ in range(3):
        fn()
    sync()
    best = 1e9
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        sync()
        best = min(best, (time.perf_counter() - t) / reps)
    return best


t_aug = timed(lambda: augment(images.gather(rows), gen))
t_gather = timed(lambda: images.gather(rows))
print(f"gather alone {256 / t_gather:,.0f} img/s; gather+augment {256 / t_aug:,.0f} img/s "
      f"({t_aug * 1e3:.2f} ms/batch)")
from torch.profiler import ProfilerActivity, profile

with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])) as prof:
    for _ in range(10):
        augment(images.gather(rows), gen)
    sync()
print(prof.key_averages().table(sort_by="cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total", row_limit=14, max_name_column_width=50))
print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=10, max_name_column_width=50))

# the step, with each extra on its own
base = user_train(dev.type, batch_size=256, precision="auto", augment_backend="device")
bare = bare_train(base)
variants = {"bare": bare, "+mixup": bare.model_copy(update={"mixup": base.mixup, "cutmix": base.cutmix,
                                                            "mix_prob": base.mix_prob}),
            "+erasing": bare.model_copy(update={"erasing": base.erasing}),
            "+ema": bare.model_copy(update={"ema": base.ema}),
            "all (params.yaml)": base}
print("recipe:", {k: getattr(base, k) for k in ("mixup", "cutmix", "mix_prob", "erasing", "ema",
                                                 "label_smoothing", "deterministic")})
rt = runtime(placement(base))
model0 = create_model("resnet18", 10, 3, 128, args={})
xs = torch.randn(256, 3, 128, 128, device=dev).contiguous(memory_format=torch.channels_last)
ys = torch.randint(0, 10, (256,), device=dev)
for name, cfg in variants.items():
    st = Stepper(step_config(cfg, 10), copy.deepcopy(model0), rt, 100)
    t = timed(lambda: st.update(st.loss(xs, ys)), reps=20)
    print(f"step {name:<20} {256 / t:>9,.0f} img/s")
st = Stepper(step_config(base, 10), copy.deepcopy(model0), rt, 100)
r = np.arange(256 * 40) % N
feed = DeviceFeed(images, r, r % 10, 256, augment)
it = iter(feed.epoch(0))
t = timed(lambda: st.update(st.loss(*next(it))), reps=10)
print(f"whole pipeline (feed+aug+all) {256 / t:>9,.0f} img/s")
it = iter(feed.epoch(1))
t = timed(lambda: next(it), reps=10)
print(f"feed alone (gather+aug) {256 / t:>9,.0f} img/s")
