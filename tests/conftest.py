import os
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402

# Module fixtures too costly to build once per xdist worker (digits_project is a whole `dvc
# repro`): every test using one joins its group, and `--dist loadgroup` (make test) runs a
# group on one worker, so the fixture is built once.
SHARED = ("digits_project",)


def pytest_collection_modifyitems(config, items):
    for item in items:
        for name in SHARED:
            if name in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(name))
