"""The compressed cache (`images.u8z`): exact bytes back, and every reader sees the same rows
as from the memory-mapped `images.npy`."""

from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from helpers import REPO, merge

from imgcomp.data import store
from imgcomp.data.feed import Images
from imgcomp.errors import UserError


def photo_rows(n=23, side=19, channels=3, seed=0):
    """Smooth images with noise: like photos, compressible but not trivially."""
    rng = np.random.default_rng(seed)
    base = np.cumsum(rng.integers(-3, 4, (n, side, side, channels)), axis=2) + 128
    return np.clip(base + rng.integers(-2, 3, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(store, "CHUNK_BYTES", 3 * 19 * 19 * 3 + 1)  # 3 rows a chunk: 23 -> 8


@pytest.mark.parametrize("channels", [1, 3])
def test_round_trip_is_exact_in_every_reader(tmp_path, small_chunks, channels):
    rows = photo_rows(channels=channels)
    rows[0] = 255  # wraps in the filter
    rows[1, :, ::2] = 0
    np.save(tmp_path / "images.npy", rows)
    store.compress(tmp_path / "images.npy", tmp_path / "images.u8z")
    packed = store.Compressed(tmp_path / "images.u8z")
    per = max(1, store.CHUNK_BYTES // rows[0].nbytes)  # 3 rows a chunk in RGB, 9 in gray
    assert packed.shape == rows.shape and len(packed.offsets) - 1 == -(-23 // per) > 1
    assert (tmp_path / "images.u8z").stat().st_size < rows.nbytes
    assert np.array_equal(store.load(tmp_path / "images.u8z"), rows)
    assert np.array_equal(np.concatenate([c for _, c in packed.chunks()]), rows)
    assert [s for s, _ in packed.chunks()] == list(range(0, 23, per))
    pick = np.array([22, 0, 5, 5, 13])
    assert np.array_equal(store.rows(tmp_path / "images.u8z", pick), rows[pick])
    assert np.array_equal(store.rows(tmp_path / "images.npy", pick), rows[pick])


def test_an_empty_cache_round_trips(tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((0, 4, 4, 3), np.uint8))
    store.compress(tmp_path / "e.npy", tmp_path / "e.u8z")
    assert store.load(tmp_path / "e.u8z").shape == (0, 4, 4, 3)


def test_compression_is_deterministic(tmp_path, small_chunks):
    np.save(tmp_path / "images.npy", photo_rows())
    store.compress(tmp_path / "images.npy", tmp_path / "a.u8z")
    store.compress(tmp_path / "images.npy", tmp_path / "b.u8z")
    assert (tmp_path / "a.u8z").read_bytes() == (tmp_path / "b.u8z").read_bytes()


def test_bad_caches_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="no cache"):
        store.locate(tmp_path)
    np.save(tmp_path / "images.npy", photo_rows())
    store.compress(tmp_path / "images.npy", tmp_path / "images.u8z")
    with pytest.raises(UserError, match="two caches"):
        store.locate(tmp_path)
    (tmp_path / "other.u8z").write_bytes(b"PK\x03\x04 not ours")
    with pytest.raises(UserError, match="not an imgcomp compressed cache"):
        store.Compressed(tmp_path / "other.u8z")
    good = (tmp_path / "images.u8z").read_bytes()
    (tmp_path / "cut.u8z").write_bytes(good[:-40])  # truncated: the index is gone
    with pytest.raises(UserError, match="damaged compressed cache"):
        store.Compressed(tmp_path / "cut.u8z")
    flipped = bytearray(good)
    flipped[len(store.MAGIC) + 5] ^= 0xFF  # a chunk's bytes: zlib refuses them
    (tmp_path / "flip.u8z").write_bytes(bytes(flipped))
    with pytest.raises(UserError, match="chunk 0 does not decompress"):
        store.load(tmp_path / "flip.u8z")
    need = photo_rows().nbytes
    monkeypatch.setattr(store, "available_ram", lambda: need)  # fits, but not with headroom
    with pytest.raises(UserError, match="compress_cache: false") as e:
        store.load(tmp_path / "images.u8z")
    assert "\n" not in str(e.value)
    monkeypatch.setattr(store, "available_ram", lambda: 3 * need)
    assert len(store.load(tmp_path / "images.u8z")) == 23
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # four ranks, a copy each: 4x does not fit
    with pytest.raises(UserError, match="4 processes, one copy each"):
        store.load(tmp_path / "images.u8z")
    with pytest.raises(IndexError):
        store.Compressed(tmp_path / "images.u8z").rows(np.array([23]))


def test_the_feed_gathers_the_same_rows_from_either_form(tmp_path, small_chunks):
    rows = photo_rows()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    np.save(tmp_path / "a/images.npy", rows)
    np.save(tmp_path / "b/images.npy", rows)
    store.compress(tmp_path / "b/images.npy", tmp_path / "b/images.u8z")
    (tmp_path / "b/images.npy").unlink()
    cpu = torch.device("cpu")
    mapped, packed = Images(store.locate(tmp_path / "a"), cpu), Images(store.locate(tmp_path / "b"), cpu)
    assert len(mapped) == len(packed) == 23 and packed.resident
    pick = np.array([4, 22, 0, 9])
    assert torch.equal(mapped.gather(pick), packed.gather(pick))
    batches = [pick, np.array([1, 2])]
    assert all(torch.equal(x, y) for x, y in zip(mapped.batches(batches), packed.batches(batches)))
    assert isinstance(mapped.host(), type(tmp_path)) and np.array_equal(packed.host(), rows)
    packed.map = None  # as on a GPU, where only the device copy is held: copied back, not
    with mock.patch.object(store.Compressed, "_chunk", side_effect=AssertionError):  # decompressed
        assert np.array_equal(packed.host(), rows) and packed.host() is packed.map
    # predict's reader: only the rows it needs (-1 as numpy reads it), at their new places
    want = np.array([7, 0, 22, -1])
    for cache in (store.locate(tmp_path / "a"), store.locate(tmp_path / "b")):
        few, at = Images.rows_of(cache, want, cpu)
        assert torch.equal(few.gather(at), torch.from_numpy(rows[want]))
    few, _ = Images.rows_of(store.locate(tmp_path / "b"), want, cpu)
    assert len(few) == 4  # the rest of the cache is not held


def test_prepare_writes_the_form_asked_for_with_the_same_pixels(tmp_path):
    import yaml
    from helpers import food11_archive

    from imgcomp.params import parse_params
    from imgcomp.stages import prepare

    base = yaml.safe_load((REPO / "params.yaml").read_text())
    food11_archive(tmp_path / "raw")
    out = {}
    for compressed in (True, False):
        out[compressed] = tmp_path / f"prepared-{compressed}"
        params = parse_params(merge(base, {"competition": "food11", "image_size": 32,
                                           "prepare": {"workers": 1,
                                                       "compress_cache": compressed}}))
        prepare.main(params, tmp_path / "raw", out[compressed])
    assert store.locate(out[True]).name == "images.u8z"
    assert store.locate(out[False]).name == "images.npy"
    assert np.array_equal(store.load(store.locate(out[True])),
                          np.load(out[False] / "images.npy"))
    for name in ("manifest.csv", "stats.json"):
        assert (out[True] / name).read_bytes() == (out[False] / name).read_bytes()


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_row_file_writes_rows_in_any_order(tmp_path):
    rng = np.random.default_rng(3)
    rows = rng.integers(0, 256, (9, 5, 6, 2), dtype=np.uint8)
    with store.RowFile(tmp_path / "r.npy", rows.shape) as f:
        for i in (4, 0, 8, 1, 7, 2, 6, 3, 5):
            f[i] = rows[i]
        with pytest.raises(ValueError, match="shape"):
            f[0] = rows[0, :4]
    np.testing.assert_array_equal(np.load(tmp_path / "r.npy"), rows)


def test_row_file_and_compress_keep_resident_memory_at_a_row(tmp_path):
    """160 MB of rows written, then compressed: the process's resident memory grows by far
    less (a memory map would keep every written page resident until it is dropped)."""
    shape = (850, 256, 256, 3)
    row = np.arange(256 * 256 * 3, dtype=np.uint32).astype(np.uint8).reshape(shape[1:])
    before = _rss_mb()
    with store.RowFile(tmp_path / "big.npy", shape) as f:
        for i in range(shape[0]):
            f[i] = row
        grown = _rss_mb() - before
    assert grown < 40, f"writing grew the RSS by {grown:.0f} MB"
    before = _rss_mb()
    store.compress(tmp_path / "big.npy", tmp_path / "big.u8z")
    assert _rss_mb() - before < 60
    assert store.Compressed(tmp_path / "big.u8z").shape == shape


def test_npy_rows_reads_what_a_memory_map_reads(tmp_path):
    rng = np.random.default_rng(4)
    rows = rng.integers(0, 256, (30, 4, 5, 3), dtype=np.uint8)
    np.save(tmp_path / "a.npy", rows)
    reader = store.NpyRows(tmp_path / "a.npy")
    assert reader.shape == rows.shape
    for index in ([0], [29, 3, 3], np.arange(0, 30, 7), []):
        np.testing.assert_array_equal(reader[index], rows[np.asarray(index, dtype=int)])
