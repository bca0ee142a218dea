"""A Kaggle competition's files, downloaded by the official client into data/raw/<name>/.

`fetch` calls `download` when a competition's block takes whatever Kaggle ships
(`archives: []`), `kaggle.<name>` names its slug and the folder holds nothing yet. It runs what
`kaggle competitions download -c <slug> -p <folder>` runs (the client's
`competition_download_cli`), into a scratch folder beside the raw one; the files move in only
when the client finished and each zip lists as a whole archive, so a cut download is never left
looking whole. No credentials, a 401, a 403 (the rules not accepted), a 404 (no such slug) and
a cut download each end in one line saying what to do, with nothing kept.

The client runs in a child process through its Python API, not as the `kaggle` command and not
in this process: importing `kaggle` authenticates (and exits the process when it cannot),
creates ~/.kaggle, and fixes the API's address (KAGGLE_API_ENVIRONMENT) for the life of the
process; and the CLI reports an HTTP error as a traceback whose text depends on the server's
body, while the API's exception carries the status, which the child hands back as its exit
code (status - 300: 403 -> 103). The child's own output (the client's progress) is the user's.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from ..errors import UserError

_CHILD = """\
import sys
import requests
from kaggle import api  # authenticates; exits 1 (with the client's message) if it cannot
try:
    api.competition_download_cli(sys.argv[1], path=sys.argv[2])
except requests.HTTPError as e:
    status = getattr(e.response, "status_code", 0) or 0
    sys.exit(status - 300 if 400 <= status < 556 else 1)
except Exception as e:  # a cut download: the connection lost for good, or the size short
    print(f"kaggle: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
"""


def credentials() -> Path | str | None:
    """Where the official client (kaggle 1.8) finds credentials, in its order, or None: an API
    token (KAGGLE_API_TOKEN, ~/.kaggle/access_token), KAGGLE_USERNAME/KAGGLE_KEY, or
    kaggle.json in its config folder (KAGGLE_CONFIG_DIR, else ~/.kaggle where that exists,
    else $XDG_CONFIG_HOME/kaggle or ~/.config/kaggle)."""
    env, home = os.environ, Path.home() / ".kaggle"
    if env.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    for token in (home / "access_token", home / "access_token.txt"):
        if token.is_file() and token.read_text().strip():
            return token
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    folder = env.get("KAGGLE_CONFIG_DIR")
    if not folder:
        xdg = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle"
        folder = home if home.exists() else xdg
    config = Path(folder) / "kaggle.json"
    return config if config.is_file() else None


def command(slug: str, raw_dir: Path) -> str:
    return f"kaggle competitions download -c {slug} -p {raw_dir}"


def download(name: str, slug: str, raw_dir: Path) -> None:
    """Download competition `slug`'s files into `raw_dir` (empty), or fail in one line."""
    by_hand = f"or download by hand: `{command(slug, raw_dir)}`"
    where = credentials()
    if where is None:
        raise UserError(
            f"{name}: no Kaggle credentials to download {slug}: put kaggle.json (API, at "
            "https://www.kaggle.com/settings) in ~/.kaggle/ (or KAGGLE_CONFIG_DIR), or set "
            f"KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN); {by_hand}")
    if importlib.util.find_spec("kaggle") is None:
        raise UserError(f"{name}: the kaggle client is not installed (`make install`); {by_hand}")
    scratch = raw_dir.parent / f".{raw_dir.name}.download"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        print(f"fetch: downloading {slug} from Kaggle, as `{command(slug, raw_dir)}` "
              f"(credentials: {where})", flush=True)
        rc = subprocess.run([sys.executable, "-c", _CHILD, slug, str(scratch)]).returncode
        got = sorted(p for p in scratch.iterdir() if p.is_file())
        if 100 <= rc < 256:
            raise UserError(_refusal(name, slug, rc + 300, where, by_hand))
        if got and (rc or not all(_lists(p) for p in got if p.suffix.lower() == ".zip")):
            what = ", ".join(f"{p.name} ({p.stat().st_size:,} bytes)" for p in got)
            raise UserError(f"{name}: the download of {slug} was cut short (client exit {rc}, "
                            f"got {what}); nothing was kept: run again, {by_hand}")
        if rc or not got:
            raise UserError(f"{name}: the kaggle client failed (exit {rc}, its message is "
                            f"above) and wrote nothing; {by_hand}")
        for path in got:
            os.replace(path, raw_dir / path.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _lists(path: Path) -> bool:
    """A zip whose central directory (its last bytes) reads: the download reached the end."""
    try:
        with zipfile.ZipFile(path):
            return True
    except (zipfile.BadZipFile, OSError):
        return False


def _refusal(name: str, slug: str, status: int, where: Path | str, by_hand: str) -> str:
    if status == 401:
        return (f"{name}: Kaggle refused the credentials in {where} (HTTP 401): make a new API "
                f"token at https://www.kaggle.com/settings and put it there; nothing was kept")
    if status == 403:
        return (f"{name}: Kaggle refused the download of {slug} (HTTP 403): accept the "
                f"competition's rules at https://www.kaggle.com/competitions/{slug}/rules with "
                f"the account of {where}, then run again; nothing was kept")
    if status == 404:
        return (f"{name}: Kaggle has no competition {slug!r} (HTTP 404): fix kaggle.{name} in "
                f"params.yaml (the slug in kaggle.com/competitions/<slug>); nothing was kept")
    return (f"{name}: Kaggle answered HTTP {status} for {slug}; nothing was kept: run again "
            f"later, {by_hand}")
