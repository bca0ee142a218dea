"""fetch downloads a Kaggle competition through the official client (kaggle 1.8.4), tested
against a stand-in for Kaggle's API on 127.0.0.1, never the real site.

With KAGGLE_API_ENVIRONMENT=LOCALHOST the client sends `POST http://localhost/api/v1/
competitions.CompetitionApiService/DownloadDataFiles` with `{"competitionName": "<slug>"}` and
HTTP basic auth (username, key). Its address has no port (the client's TEST environment,
localhost:7777, is not reachable from the CLI's settings), so the stand-in binds 127.0.0.1:80
(this machine runs as root). Like the real API it answers with a redirect (kagglesdk's
HttpRedirect: the client names the file from the redirect's URL, `<slug>.zip`, and needs its
Content-Length), or an error as JSON (`{"code": 403, "message": ...}`), or 401 without the
credentials. All tests that bind port 80 share one xdist group and one server; a second pytest
process waits for the port.
"""

import base64
import errno
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from imgcomp.competitions import kaggle
from imgcomp.errors import UserError

SLUG = "dog-breed-identification"
API = "/api/v1/competitions.CompetitionApiService/DownloadDataFiles"
USER, KEY = "tester", "not-a-real-key"
pytestmark = pytest.mark.xdist_group("kaggle_port80")  # one server on port 80


class StandIn(BaseHTTPRequestHandler):
    """Kaggle's API as the client sees it; `mode` says how it answers the next download."""

    mode, data, calls = "ok", b"", []

    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status, message):
        body = json.dumps({"code": status, "message": message}).encode()
        self._send(status, body, [("Content-Type", "application/json")])

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = self.headers.get("Authorization", "")
        type(self).calls.append((self.path, body, auth))
        slug = body.get("competitionName")
        if self.path != API:
            return self._error(404, "no such endpoint")
        if auth != "Basic " + base64.b64encode(f"{USER}:{KEY}".encode()).decode():
            return self._error(401, "Unauthenticated")
        if self.mode == "403":
            return self._error(403, "You must accept this competition's rules before you'll be "
                                    "able to download files.")
        if self.mode == "404" or slug != SLUG:
            return self._error(404, "Competition not found")
        self._send(302, headers=[("Location", f"/storage/{slug}.zip?X-Goog-Signature=abc")])

    def do_GET(self):  # the signed storage URL the API redirects to
        data = self.data
        if self.headers.get("Range"):  # the client's retry after a cut: the server gives up
            return self._send(200, b"", [("Content-Type", "application/zip")])
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
        if self.mode == "cut":  # the connection drops a third of the way in
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 3])
            self.close_connection = True
            return
        if self.mode == "short":  # a whole-looking answer whose zip lost its end
            data = data[: len(data) // 2]
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def port80():
    deadline = time.monotonic() + 300
    while True:
        try:
            server = ThreadingHTTPServer(("127.0.0.1", 80), StandIn)
            break
        except OSError as e:  # another test process holds the port: wait for it
            if e.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(1)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield StandIn
    server.shutdown()
    server.server_close()


@pytest.fixture
def kaggle_env(tmp_path, monkeypatch):
    """A fake kaggle.json in a temporary KAGGLE_CONFIG_DIR and HOME, the API on localhost."""
    for k in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR",
              "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
    config = tmp_path / "kaggle-config"
    config.mkdir()
    (config / "kaggle.json").write_text(json.dumps({"username": USER, "key": KEY}))
    (config / "kaggle.json").chmod(0o600)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config))
    return config


@pytest.fixture
def project(tmp_path, monkeypatch):
    """params.yaml with dog-breed's block as `imgcomp new` writes it (kaggle.<slug>: <slug>),
    Kaggle's zip of it in memory, and an empty data/raw/<slug>/."""
    from kaggle_layouts import with_block

    built, params = with_block(tmp_path, SLUG)
    zipped = built.raw / f"{SLUG}.zip"
    StandIn.data, StandIn.mode, StandIn.calls = zipped.read_bytes(), "ok", []
    zipped.unlink()
    assert params.kaggle_slug() == SLUG
    raw = tmp_path / "data/raw" / SLUG
    return params, raw


def fetch_stage(params, raw):
    from imgcomp.stages import fetch

    fetch.main(params, raw)


def assert_nothing_kept(raw):
    assert not any(raw.iterdir()), list(raw.iterdir())
    assert [p.name for p in raw.parent.iterdir()] == [raw.name]  # no scratch folder beside


def test_fetch_downloads_once_and_the_zip_lists(port80, kaggle_env, project, capfd):
    params, raw = project
    fetch_stage(params, raw)
    assert (raw / f"{SLUG}.zip").read_bytes() == port80.data
    assert [p.name for p in raw.parent.iterdir()] == [raw.name]  # no scratch left
    [(path, body, _)] = port80.calls
    assert path == API and body == {"competitionName": SLUG}
    assert f"kaggle competitions download -c {SLUG} -p {raw}" in capfd.readouterr().out

    from imgcomp.competitions.tree import Tree  # what `prepare` lists: the layout, whole
    assert "labels.csv" in Tree.listing(raw).files

    fetch_stage(params, raw)  # a second `make all`: the folder holds the data
    assert len(port80.calls) == 1


def test_credentials_from_the_environment(port80, kaggle_env, project, monkeypatch):
    params, raw = project
    (kaggle_env / "kaggle.json").unlink()
    monkeypatch.setenv("KAGGLE_USERNAME", USER)
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    fetch_stage(params, raw)
    assert (raw / f"{SLUG}.zip").read_bytes() == port80.data


@pytest.mark.parametrize("mode, says", [
    ("403", f"accept the competition's rules at https://www.kaggle.com/competitions/{SLUG}/rules"),
    ("404", f"Kaggle has no competition '{SLUG}' (HTTP 404): fix kaggle.{SLUG} in params.yaml"),
    ("cut", f"the download of {SLUG} was cut short"),
    ("short", f"the download of {SLUG} was cut short"),
])
def test_refusals_and_cuts_end_in_one_line_and_keep_nothing(port80, kaggle_env, project, mode,
                                                            says):
    params, raw = project
    port80.mode = mode
    with pytest.raises(UserError) as e:
        fetch_stage(params, raw)
    assert says in str(e.value) and "\n" not in str(e.value)
    assert_nothing_kept(raw)
    port80.mode = "ok"  # and the next run downloads it whole
    fetch_stage(params, raw)
    assert (raw / f"{SLUG}.zip").read_bytes() == port80.data


def test_wrong_key_is_one_line(port80, kaggle_env, project):
    params, raw = project
    (kaggle_env / "kaggle.json").write_text(json.dumps({"username": USER, "key": "wrong"}))
    with pytest.raises(UserError, match="refused the credentials in .*kaggle.json \\(HTTP 401\\)"):
        fetch_stage(params, raw)
    assert_nothing_kept(raw)


def test_no_credentials_says_where_and_starts_nothing(kaggle_env, project):
    params, raw = project
    (kaggle_env / "kaggle.json").unlink()
    with pytest.raises(UserError) as e:
        fetch_stage(params, raw)
    msg = str(e.value)
    assert "no Kaggle credentials" in msg and "~/.kaggle/" in msg and "KAGGLE_USERNAME" in msg
    assert f"`kaggle competitions download -c {SLUG} -p {raw}`" in msg and "\n" not in msg
    assert StandIn.calls == []
    assert_nothing_kept(raw)


def test_no_slug_asks_for_the_files(kaggle_env, project, tmp_path):
    from imgcomp.params import load_params

    _, raw = project
    text = (tmp_path / "params.yaml").read_text()
    assert f"  {SLUG}: {SLUG}  #" in text  # as `imgcomp new` wrote it
    (tmp_path / "params.yaml").write_text(text.replace(f"  {SLUG}: {SLUG}", f"  {SLUG}: null"))
    with pytest.raises(UserError, match=f"is empty: put the competition's files there.*"
                                        f"kaggle.{SLUG} to download it"):
        fetch_stage(load_params(tmp_path / "params.yaml"), raw)
    assert StandIn.calls == []


def test_credentials_are_found_where_the_client_looks(tmp_path, monkeypatch):
    for k in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR",
              "XDG_CONFIG_HOME"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kaggle.credentials() is None
    xdg = tmp_path / ".config/kaggle/kaggle.json"
    xdg.parent.mkdir(parents=True)
    xdg.write_text("{}")
    assert kaggle.credentials() == xdg  # no ~/.kaggle: the XDG folder
    (tmp_path / ".kaggle").mkdir()
    assert kaggle.credentials() is None  # ~/.kaggle exists: the client looks only there
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(xdg.parent))
    assert kaggle.credentials() == xdg
    (tmp_path / ".kaggle/access_token").write_text("KGAT_x\n")
    assert kaggle.credentials() == tmp_path / ".kaggle/access_token"
    monkeypatch.setenv("KAGGLE_USERNAME", "u")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_y")
    assert kaggle.credentials() == "KAGGLE_API_TOKEN"


def test_the_slug_is_a_param_of_fetch():
    from imgcomp import pipeline

    assert "kaggle.${competition}" in pipeline.declaration("fetch")["params"]
