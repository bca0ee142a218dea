"""Training and inference: device setup, the epoch loop, checkpoints, resume, DDP."""
