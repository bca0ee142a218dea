"""imgcomp: raw competition archives to a leaderboard-ready submission, one DVC stage at a time."""

import os

# albumentations asks the network for a newer version on import; this project runs offline.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
