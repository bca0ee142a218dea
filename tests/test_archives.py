import io
import tarfile
import zipfile

import pytest
from helpers import LocalServer, write_rar4, write_rar5, write_zip

from imgcomp.archives import download, extract, rar4_is_solid, sha256sum
from imgcomp.errors import UserError

BIG = 10**9


def test_zip_and_nested_zip(tmp_path):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("PALM-Training400/P0001.jpg", b"jpeg")
    arch = write_zip(tmp_path / "training.zip", {"PALM-Training400/PALM-Training400.zip": inner.getvalue()})
    extract(arch, tmp_path / "out", BIG)
    assert (tmp_path / "out/PALM-Training400/PALM-Training400/P0001.jpg").read_bytes() == b"jpeg"
    assert not (tmp_path / "out/PALM-Training400/PALM-Training400.zip").exists()


def test_rar4_stored(tmp_path):
    arch = write_rar4(tmp_path / "a.rar", {"cat_dog/train/cat.1.jpg": b"abc", "cat_dog/test/0.jpg": b"xy"})
    assert not rar4_is_solid(arch)
    extract(arch, tmp_path / "out", BIG)
    assert (tmp_path / "out/cat_dog/train/cat.1.jpg").read_bytes() == b"abc"
    assert (tmp_path / "out/cat_dog/test/0.jpg").read_bytes() == b"xy"


def test_rar5_stored(tmp_path):
    arch = write_rar5(tmp_path / "a.rar", {"cat_dog/val/dog_7.jpg": b"abc" * 50, "cat_dog/test/1.jpg": b"z"})
    assert not rar4_is_solid(arch)
    extract(arch, tmp_path / "out", BIG)
    assert (tmp_path / "out/cat_dog/val/dog_7.jpg").read_bytes() == b"abc" * 50
    assert (tmp_path / "out/cat_dog/test/1.jpg").read_bytes() == b"z"


def test_7z_via_libarchive(tmp_path):
    import libarchive

    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d/x.txt").write_text("seven")
    arch = tmp_path / "a.7z"
    import os
    cwd = os.getcwd()
    os.chdir(src)
    try:
        with libarchive.file_writer(str(arch), "7zip") as w:
            w.add_files("d/x.txt")
    finally:
        os.chdir(cwd)
    extract(arch, tmp_path / "out", BIG)
    assert (tmp_path / "out/d/x.txt").read_text() == "seven"


def test_solid_rar4_without_tools_says_what_to_install(tmp_path, monkeypatch):
    arch = write_rar4(tmp_path / "s.rar", {"a.jpg": b"1"}, solid=True)
    assert rar4_is_solid(arch)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="solid RAR4.*install unrar or unar"):
        extract(arch, tmp_path / "out", BIG)
    assert not (tmp_path / "out").exists()


def test_solid_rar4_uses_external_tool_and_checks_its_output(tmp_path, monkeypatch):
    arch = write_rar4(tmp_path / "s.rar", {"a.jpg": b"1"}, solid=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "unar"  # a stand-in that writes what a real unar would, and a link
    tool.write_text('#!/bin/sh\nfor a; do d="$o"; o="$a"; done\n'
                    'out=$(echo "$@" | sed "s/.*-o \\([^ ]*\\) .*/\\1/")\n'
                    'mkdir -p "$out/cat_dog" && echo hi > "$out/cat_dog/a.jpg"\n'
                    '[ -n "$EVIL" ] && ln -s /etc/passwd "$out/cat_dog/link"\nexit 0\n')
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    extract(arch, tmp_path / "ok", BIG)
    assert (tmp_path / "ok/cat_dog/a.jpg").read_text().strip() == "hi"
    monkeypatch.setenv("EVIL", "1")
    with pytest.raises(UserError, match="is a link"):
        extract(arch, tmp_path / "bad", BIG)
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/tmp/evil-abs.txt"])
def test_path_traversal_is_refused(tmp_path, name):
    arch = tmp_path / "t.zip"
    with zipfile.ZipFile(arch, "w") as z:
        z.writestr("ok.txt", b"fine")
        z.writestr(zipfile.ZipInfo(name), b"evil")
    target = tmp_path / "deep/out"
    with pytest.raises(UserError, match="refusing"):
        extract(arch, target, BIG)
    assert not target.exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "deep/evil.txt").exists()
    assert not list(tmp_path.glob("deep/.out.tmp*"))


def test_symlink_in_zip_is_refused(tmp_path):
    arch = tmp_path / "l.zip"
    with zipfile.ZipFile(arch, "w") as z:
        info = zipfile.ZipInfo("link")
        info.create_system = 3
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    with pytest.raises(UserError, match="is a link"):
        extract(arch, tmp_path / "out", BIG)
    assert not (tmp_path / "out").exists()


def test_hardlink_in_tar_is_refused(tmp_path):
    arch = tmp_path / "h.tar"
    with tarfile.open(arch, "w") as t:
        data = b"x"
        info = tarfile.TarInfo("a.txt")
        info.size = 1
        t.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("b.txt")
        link.type = tarfile.LNKTYPE
        link.linkname = "/etc/passwd"
        t.addfile(link)
    with pytest.raises(UserError, match="is a link"):
        extract(arch, tmp_path / "out", BIG)


def test_truncated_member_is_a_clear_error(tmp_path):
    arch = write_zip(tmp_path / "t.zip", {"a.bin": bytes(range(256)) * 4000})
    data = arch.read_bytes()
    arch.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError) as e:
        extract(arch, tmp_path / "out", BIG)
    msg = str(e.value)
    assert "t.zip: a.bin inside it cannot be read" in msg and "re-download it" in msg
    assert "archive_p" not in msg and "errno" not in msg
    assert not (tmp_path / "out").exists()


def test_decompression_bomb_cap(tmp_path):
    arch = write_zip(tmp_path / "b.zip", {"zeros": bytes(5_000_000)})
    assert arch.stat().st_size < 50_000
    with pytest.raises(UserError, match="decompression bomb"):
        extract(arch, tmp_path / "out", 1_000_000)
    assert not (tmp_path / "out").exists()


def test_download_whole(tmp_path):
    payload = bytes(range(256)) * 5000
    with LocalServer() as srv:
        url = srv.serve("/a.zip", payload)
        download(url, tmp_path / "a.zip", sha256sum_bytes(payload), progress=False)
    assert (tmp_path / "a.zip").read_bytes() == payload
    assert not (tmp_path / "a.zip.part").exists()


def test_download_resumes_after_cut(tmp_path):
    payload = bytes(range(256)) * 8000
    with LocalServer() as srv:
        url = srv.serve("/a.zip", payload, cut_first_after=300_000)
        download(url, tmp_path / "a.zip", sha256sum_bytes(payload), progress=False)
        ranges = [r for p, r in srv.handler.requests if p == "/a.zip"]
    assert (tmp_path / "a.zip").read_bytes() == payload
    assert ranges[0] is None and ranges[1] == "bytes=300000-"


def test_download_checksum_mismatch_leaves_nothing(tmp_path):
    with LocalServer() as srv:
        url = srv.serve("/a.zip", b"not what you expect")
        with pytest.raises(UserError, match="sha256 mismatch"):
            download(url, tmp_path / "a.zip", "0" * 64, progress=False)
    assert not (tmp_path / "a.zip").exists() and not (tmp_path / "a.zip.part").exists()


def test_download_404_is_clear(tmp_path):
    with LocalServer() as srv:
        with pytest.raises(UserError, match="HTTP 404"):
            download(srv.url("/missing.zip"), tmp_path / "m.zip", progress=False)
    assert not (tmp_path / "m.zip").exists()


def sha256sum_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_sha256sum(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256sum(tmp_path / "f") == sha256sum_bytes(b"abc")


def fake_tool(bin_dir, name, code, out="", err="", writes=None):
    """A stand-in for unrar/unar/7z: prints what the real one prints; on success writes files
    where the real one would (its output folder is the argument after -o, or the last one)."""
    bin_dir.mkdir(exist_ok=True)
    write = ""
    if writes:
        write = ('for a; do last="$a"; done; out="$last"; prev=""; '
                 'for a; do [ "$prev" = "-o" ] && out="$a"; case "$a" in -o?*) out="${a#-o}";; '
                 'esac; prev="$a"; done; '
                 + " ".join(f'mkdir -p "$out/$(dirname {n})" && printf x > "$out/{n}";'
                            for n in writes))
    (bin_dir / name).write_text(f"#!/bin/sh\n{write}\nprintf '%s' '{out}'\n"
                                f"printf '%s' '{err}' >&2\nexit {code}\n")
    (bin_dir / name).chmod(0o755)


SEVEN_Z = ("ERROR: Unsupported Method : cat_dog/test/0.jpg\\nERROR: Unsupported Method : "
           "cat_dog/test/1.jpg\\n\\nSub items Errors: 12")


def test_solid_rar4_moves_on_from_a_tool_that_cannot_read_it(tmp_path, monkeypatch):
    arch = write_rar4(tmp_path / "s.rar", {"a.jpg": b"1"}, solid=True)
    bins = tmp_path / "bin"
    fake_tool(bins, "7z", 2, err=SEVEN_Z)
    fake_tool(bins, "unrar", 3, err="ERROR: simulated")
    fake_tool(bins, "unar", 0, writes=["cat_dog/a.jpg"])
    monkeypatch.setenv("PATH", f"{bins}:/usr/bin:/bin")
    extract(arch, tmp_path / "ok", BIG)  # unrar failed, unar read it: 7z never needed
    assert (tmp_path / "ok/cat_dog/a.jpg").read_text() == "x"


def test_solid_rar4_only_debian_7z_is_one_line_naming_what_to_install(tmp_path, monkeypatch):
    arch = write_rar4(tmp_path / "s.rar", {"a.jpg": b"1"}, solid=True)
    fake_tool(tmp_path / "bin", "7z", 2, err=SEVEN_Z)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    with pytest.raises(UserError) as e:
        extract(arch, tmp_path / "out", BIG)
    msg = str(e.value)
    assert "\n" not in msg and "7z: ERROR: Unsupported Method : cat_dog/test/0.jpg" in msg
    assert "install unrar or unar" in msg and "re-download" not in msg
    assert not (tmp_path / "out").exists()


def test_truncated_solid_rar4_says_re_download(tmp_path, monkeypatch):
    arch = write_rar4(tmp_path / "s.rar", {"a.jpg": b"1"}, solid=True)
    fake_tool(tmp_path / "bin", "unar", 1,
              out="s.rar: RAR\\n  a.jpg  Failed! (Attempted to read more data than was available)")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    with pytest.raises(UserError, match="damaged or incomplete: re-download it"):
        extract(arch, tmp_path / "out", BIG)


def test_desktop_junk_is_never_extracted_at_any_level(tmp_path):
    """The PALM case: a nested zip beside its AppleDouble twin, which is no archive."""
    from helpers import desktop_junk

    inner = tmp_path / "inner.zip"
    write_zip(inner, desktop_junk({"photos/a.jpg": b"A"}))
    outer = write_zip(tmp_path / "outer.zip", desktop_junk({"x/inner.zip": inner.read_bytes(),
                                                             "x/b.jpg": b"B"}))
    skipped = extract(outer, tmp_path / "out", BIG)
    files = sorted(p.relative_to(tmp_path / "out").as_posix()
                   for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert files == ["x/b.jpg", "x/photos/a.jpg"]
    # outer: 2 twins + 3 desktop files in x/; inner: 1 twin + 3 desktop files in photos/
    assert skipped == (2 + 3) + (1 + 3)


def test_a_nested_file_that_is_no_archive_is_named_inside_its_archive(tmp_path):
    outer = write_zip(tmp_path / "training.zip", {"PALM/PALM-Training400.zip": b"not a zip at all"})
    with pytest.raises(UserError) as e:
        extract(outer, tmp_path / "out", BIG)
    msg = str(e.value)
    assert "training.zip: PALM/PALM-Training400.zip inside it is not a readable archive" in msg
    assert "archive_p" not in msg and "errno" not in msg and "\n" not in msg
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("rel, junk", [
    ("__MACOSX/PALM/._PALM.zip", True), ("a/._x.jpg", True), ("a/.DS_Store", True),
    ("a/Thumbs.db", True), ("a/desktop.ini", True), ("a/.hidden", True),
    ("a/b.jpg", False), ("PALM-Training400/P0001.jpg", False), ("MACOSX/a.jpg", False)])
def test_one_rule_for_what_is_not_data(rel, junk):
    from imgcomp.archives import not_data

    assert not_data(rel) is junk


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_damaged_entry_in_a_zip_names_it_and_says_re_download(tmp_path, capfd, method):
    """Stored: only the CRC tells (libarchive merely warns, and would write the corrupt bytes);
    deflated: decompression fails."""
    arch = tmp_path / "food11.zip"
    with zipfile.ZipFile(arch, "w", method) as z:
        z.writestr("food11/test/0001.jpg", bytes(range(256)) * 400)
        z.writestr("food11/test/0002.jpg", b"fine")
    data = bytearray(arch.read_bytes())
    data[200] ^= 0xFF  # inside the first entry's data
    arch.write_bytes(bytes(data))
    with pytest.raises(UserError) as e:
        extract(arch, tmp_path / "out", BIG)
    msg = str(e.value)
    assert "food11/test/0001.jpg inside it cannot be read" in msg and msg.endswith("re-download it")
    assert "archive_p" not in msg and "\n" not in msg and not (tmp_path / "out").exists()
    assert capfd.readouterr().err == ""  # the warning became the error, not a stray line
