"""Array samples: each reader on its competition's files, the channel map, the pixel scale
fitted then re-applied byte for byte, the resize shared with image files, bounded memory, and
every bad input a one-line error naming the file and the sample."""

from __future__ import annotations

import io
import json
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import layouts_arrays as L
from imgcomp.data import arrays as A
from imgcomp.data.cache import decode
from imgcomp.errors import UserError


def one_line_error(fn, *needles) -> str:
    with pytest.raises(UserError) as info:
        fn()
    text = str(info.value)
    assert "\n" not in text
    for needle in needles:
        assert needle in text, (needle, text)
    return text


def consume(reader):
    return list(reader)


# -- readers on the competitions' files --------------------------------------------------------

def test_digit_recognizer_rows_are_samples_numbered_from_one(tmp_path):
    built = L.digit_recognizer(tmp_path, zipped=False)
    train = consume(A.read_pixel_columns(tmp_path / "train.csv", chunk_rows=7))
    assert [s.id for s in train] == [str(k) for k in range(1, 31)]
    assert train[0].bands.shape == (1, 28, 28) and train[0].bands.dtype == np.uint8
    labels = [int(s.fields["label"]) for s in train]
    means = [s.bands.mean() for s in train]
    assert np.corrcoef(labels, means)[0, 1] > 0.99  # the class shows in the values
    test = consume(A.read_pixel_columns(tmp_path / "test.csv", chunk_rows=5))
    assert [s.id for s in test] == list(built.answers)  # ImageId: test.csv's 1-based row
    assert all(s.fields == {} for s in test)
    first = pd.read_csv(tmp_path / "test.csv").iloc[0].to_numpy()
    assert (test[0].bands.reshape(-1) == first).all()  # pixel k at row k // 28, column k % 28


def test_kannada_ids_come_from_the_id_column(tmp_path):
    built = L.kannada_mnist(tmp_path, zipped=False)
    test = consume(A.read_pixel_columns(tmp_path / "test.csv", id_column="id"))
    assert [s.id for s in test] == list(built.answers) and test[0].fields == {}
    dig = consume(A.read_pixel_columns(tmp_path / "Dig-MNIST.csv"))
    assert [s.fields["label"] for s in dig] == [str(d) for d in range(10)]


def test_fer2013_pixel_strings_with_spaced_column_names(tmp_path):
    built = L.fer2013(tmp_path, zipped=False)
    train = consume(A.read_pixel_strings(tmp_path / "train.csv", chunk_rows=4))
    assert len(train) == 21 and train[0].bands.shape == (1, 48, 48)
    assert train[0].fields == {"emotion": "0"}
    icml = consume(A.read_pixel_strings(tmp_path / "icml_face_data.csv"))  # ` pixels`, ` Usage`
    assert {s.fields["Usage"] for s in icml} == {"Training", "PublicTest", "PrivateTest"}
    test = consume(A.read_pixel_strings(tmp_path / "test.csv"))
    assert [s.id for s in test] == list(built.answers)
    assert (test[0].bands == icml[21].bands).all()  # icml holds the test rows, in order


def statoil_json(tmp_path, name="train.json"):
    from imgcomp.archives import extract

    L.statoil(tmp_path / "raw", zipped=True, side=15)
    out = tmp_path / "x"
    extract(tmp_path / "raw" / "statoil-iceberg-classifier-challenge.zip", out, 1 << 30)
    return next(out.rglob(name))


def test_statoil_bands_from_json_records(tmp_path):
    train = consume(A.read_json_bands(statoil_json(tmp_path)))
    assert len(train) == 24 and train[0].bands.shape == (2, 15, 15)
    assert train[0].bands.dtype == np.float32
    assert {s.fields["inc_angle"] for s in train} >= {"na", "30.0"}
    iceberg = [s.bands[0].mean() for s in train if s.fields["is_iceberg"] == "1"]
    ship = [s.bands[0].mean() for s in train if s.fields["is_iceberg"] == "0"]
    assert min(iceberg) > max(ship)
    rule = A.fit_rule(train, A.ChannelMap.of({"channels": [[0], [1], [0, 1]]}))
    assert rule.n_channels == 3 and all(-40 < lo < hi < 0 for lo, hi in zip(rule.lo, rule.hi))
    row = A.cache_row(train[0].bands, rule, 20)
    assert row.shape == (20, 20, 3) and row.dtype == np.uint8


def test_seti_npy_per_sample_tiled_into_one_tall_image(tmp_path):
    L.seti(tmp_path, zipped=False)
    labels = pd.read_csv(tmp_path / "train_labels.csv", dtype=str)
    train = consume(A.read_npy_files(tmp_path / "train", labels["id"], pattern="{id[0]}/{id}.npy"))
    assert [s.id for s in train] == labels["id"].tolist()
    assert train[0].bands.shape == (6, 16, 16) and train[0].bands.dtype == np.float16
    tall = A.compose(train[1].bands, A.ChannelMap(tile="vertical"))
    assert tall.shape == (1, 96, 16)
    assert (tall[0, 32:48] == train[1].bands[2].astype(np.float64)).all()  # panel 2, third
    rule = A.fit_rule(train, A.ChannelMap(tile="vertical"))
    on = A.cache_row(train[1].bands, rule, 24)[..., 0].astype(float)  # target 1: ON panels lit
    assert on[:4].mean() > on[4:8].mean() + 40


def test_bengali_parquet_by_record_batches(tmp_path):
    L.bengali_like(tmp_path, zipped=False)
    path = tmp_path / "train_image_data_0.parquet"
    one_line_error(lambda: consume(A.read_parquet(path)), "train_image_data_0.parquet",
                   "493 values", "not a square", "set the sample shape")
    train = consume(A.read_parquet(path, shape=L.BENGALI_SHAPE, batch_rows=2))
    assert [s.id for s in train] == [f"Train_{k}" for k in range(8)]
    assert train[0].bands.shape == (1, 17, 29) and train[0].bands.dtype == np.uint8
    labels = pd.read_csv(tmp_path / "train.csv").set_index("image_id")["grapheme_root"]
    ink = [255 - s.bands.mean() for s in train]
    assert np.corrcoef([labels[s.id] for s in train], ink)[0, 1] > 0.99


def test_hpa_four_stain_files_make_one_sample(tmp_path):
    L.hpa(tmp_path, zipped=False)
    table = pd.read_csv(tmp_path / "train.csv", dtype=str)
    train = consume(A.read_image_stacks(tmp_path / "train", table["Id"]))
    assert train[0].bands.shape == (4, 16, 16) and train[0].bands.dtype == np.uint8
    for sample, tags in zip(train, table["Target"]):
        green = sample.bands[1]
        lit = [j for j in range(4) if green[(j // 2) * 8:(j // 2 + 1) * 8,
                                            (j % 2) * 8:(j % 2 + 1) * 8].mean() > 120]
        assert lit == [int(t) for t in tags.split()]
    rule = A.fit_rule(train, A.ChannelMap.of({"channels": [[0, 3], [1], [2]]}))
    assert rule.lo == (0.0,) * 3 and rule.hi == (255.0,) * 3  # uint8: the dtype's range
    one_line_error(lambda: consume(A.read_image_stacks(tmp_path / "train", ["nope"])),
                   "nope_red.png", "sample nope", "is the data complete")


# -- the channel map -------------------------------------------------------------------------

def test_channels_average_listed_bands_and_tile_lays_them_out():
    bands = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)
    mixed = A.compose(bands, A.ChannelMap.of({"channels": [[0], 1, [0, 1]]}))
    assert mixed.shape == (3, 2, 3)
    assert (mixed[0] == bands[0]).all() and (mixed[1] == bands[1]).all()
    assert np.allclose(mixed[2], (bands[0] + bands[1]) / 2)
    assert (A.compose(bands, A.ChannelMap()) == bands).all()  # unset: every band, in order
    wide = A.compose(bands, A.ChannelMap(tile="horizontal"))
    assert wide.shape == (1, 2, 6) and (wide[0, :, 3:] == bands[1]).all()
    two = A.compose(bands, A.ChannelMap.of({"channels": [[1, 0], [0, 1]], "tile": "vertical"}))
    assert two.shape == (2, 4, 3) and (two[0, :2] == bands[1]).all()


def test_channel_map_mistakes_name_the_key():
    bands = np.zeros((2, 3, 3))
    one_line_error(lambda: A.compose(bands, A.ChannelMap.of({"channels": [[0], [2]]})),
                   "channels", "band 2", "2 band(s)")
    one_line_error(lambda: A.compose(bands, A.ChannelMap.of({"channels": [[0], [0, 1]],
                                                             "tile": "vertical"})),
                   "same number of bands")
    one_line_error(lambda: A.ChannelMap.of({"tile": "diagonal"}), "tile", "diagonal")
    one_line_error(lambda: A.ChannelMap.of({"channels": [[0], "red"]}), "channels", "'red'")
    one_line_error(lambda: A.ChannelMap.of({"channels": []}), "channels")
    one_line_error(lambda: A.ChannelMap.of({"chanels": [0]}), "chanels")
    one_line_error(lambda: A.ChannelMap.of({"scale": "log"}), "scale", "log")


# -- the pixel scale -------------------------------------------------------------------------

def float_samples(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(-20, 5, (2, 9, 9)).astype(np.float32) for _ in range(n)]


def test_a_stored_rule_decodes_to_the_same_bytes(tmp_path):
    samples = float_samples()
    cmap = A.ChannelMap.of({"channels": [[0], [1], [0, 1]]})
    rule = A.fit_rule(samples, cmap, limit=16, pixels=20)
    stored = tmp_path / "rule.json"
    stored.write_text(json.dumps(rule.to_json()))
    again = A.ArrayRule.from_json(json.loads(stored.read_text()))
    assert again == rule
    for bands in samples[:5]:
        assert A.cache_row(bands, again, 13).tobytes() == A.cache_row(bands, rule, 13).tobytes()
    refit = A.fit_rule(iter(samples), cmap, limit=16, pixels=20)
    assert refit == rule  # seeded: the same training samples give the same rule
    assert A.fit_rule(samples, cmap, limit=16, pixels=20, seed=1) != rule  # the seed matters


def test_fitted_range_is_robust_and_maps_linearly():
    samples = float_samples()
    samples[3][0, 0, 0] = 1e6  # one hot pixel must not squash the rest
    rule = A.fit_rule(samples, A.ChannelMap(), pixels=81)
    assert rule.hi[0] < 0 and rule.lo[0] < -30
    values = np.array([[[-30, -4.5, -17.25, -40, 0, -29.96, -29.94]]])  # 255 / 25.5 = 10
    assert A.to_bytes(values, [-30], [-4.5])[0, :, 0].tolist() == [0, 255, 128, 0, 255, 0, 1]


def test_dtype_ranges_need_no_fitting():
    u8 = np.random.default_rng(0).integers(0, 256, (1, 7, 7), dtype=np.uint8)
    rule = A.fit_rule(iter([u8, "never read"]), A.ChannelMap())
    assert (rule.lo, rule.hi) == ((0.0,), (255.0,))
    assert (A.cache_row(u8, rule, 7)[..., 0] == u8[0]).all()  # uint8 as is
    u16 = np.array([[[0, 257, 385, 386, 65535]]], dtype=np.uint16)
    rule16 = A.fit_rule([u16], A.ChannelMap())
    assert A.to_bytes(A.compose(u16, rule16.map), rule16.lo, rule16.hi)[0, :, 0].tolist() == \
        [0, 1, 1, 2, 255]  # /257, rounded: 385/257 = 1.498, 386/257 = 1.502
    fitted = A.fit_rule([u8], A.ChannelMap(scale="fit"))
    assert fitted.hi[0] < 255 or fitted.lo[0] > 0


def test_damaged_stored_rule_is_a_user_error():
    one_line_error(lambda: A.ArrayRule.from_json({"channels": None, "lo": [0]}), "run prepare")
    one_line_error(lambda: A.ArrayRule.from_json({"lo": [1.0], "hi": [0.5]}), "run prepare")


# -- the resize: array samples and image files alike ----------------------------------------

@pytest.mark.parametrize("channels", [1, 3])
def test_resize_matches_cache_decode_of_the_same_pixels(tmp_path, channels):
    rng = np.random.default_rng(channels)
    pixels = rng.integers(0, 256, (137, 236, channels), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(pixels[..., 0] if channels == 1 else pixels).save(path)
    for size in (16, 64, 300):
        assert (A.resize(pixels, size) == decode(path, size, channels)).all()


# -- bounded memory --------------------------------------------------------------------------

def peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_pixel_csv_is_read_a_chunk_at_a_time(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.integers(0, 256, (4000, 64)),
                         columns=[f"pixel{k}" for k in range(64)])
    frame.to_csv(tmp_path / "big.csv", index=False)
    seen = []

    def read(chunk_rows):
        seen.clear()
        seen.extend(s.bands.sum() for s in A.read_pixel_columns(tmp_path / "big.csv",
                                                               chunk_rows=chunk_rows))

    whole = peak_bytes(lambda: read(4000))
    peak = peak_bytes(lambda: read(200))
    assert len(seen) == 4000
    assert peak < whole / 4


def test_json_records_are_parsed_one_at_a_time(tmp_path):
    rng = np.random.default_rng(0)
    records = [{"id": str(k), "band_1": rng.normal(size=400).round(4).tolist()}
               for k in range(1000)]
    (tmp_path / "big.json").write_text(json.dumps(records))
    whole = peak_bytes(lambda: json.loads((tmp_path / "big.json").read_text()))
    count = []
    peak = peak_bytes(lambda: count.extend(
        r["id"] for r in A.json_records(tmp_path / "big.json", block=50_000)))
    assert len(count) == 1000
    assert peak < whole / 20
    small = list(A.json_records(tmp_path / "big.json", block=1000))  # records span blocks
    assert [r["id"] for r in small] == [str(k) for k in range(1000)]
    assert small[7]["band_1"] == records[7]["band_1"]
    bands = list(A.read_json_bands(tmp_path / "big.json", bands=["band_1"], shape=(20, 20)))
    assert np.allclose(bands[7].bands.reshape(-1), records[7]["band_1"])


def test_parquet_is_read_by_record_batches(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    L.bengali_like(tmp_path, zipped=False)
    path = tmp_path / "train_image_data_1.parquet"
    assert pq.ParquetFile(path).metadata.num_row_groups > 1
    sizes = []
    real = pq.ParquetFile.iter_batches

    def spy(self, *args, **kwargs):
        for batch in real(self, *args, **kwargs):
            sizes.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    reader = A.read_parquet(path, shape=L.BENGALI_SHAPE, batch_rows=2)
    next(reader)
    assert sizes == [2]  # the first sample needs the first batch only
    rest = list(reader)
    assert len(rest) == 7 and max(sizes) <= 2


# -- bad input: one line naming the file and the sample --------------------------------------

def write(tmp_path, name, text) -> str:
    (tmp_path / name).write_text(text)
    return tmp_path / name


def test_text_in_a_pixel_column(tmp_path):
    path = write(tmp_path, "train.csv", "label,pixel0,pixel1,pixel2,pixel3\n1,0,0,0,0\n"
                                        "2,0,0,0,abc\n")
    one_line_error(lambda: consume(A.read_pixel_columns(path)), "train.csv", "sample 2", "'abc'",
                   "pixel3")
    path = write(tmp_path, "fer.csv", "emotion,pixels\n0,1 2 3 4\n3,1 2 x 4\n")
    one_line_error(lambda: consume(A.read_pixel_strings(path)), "fer.csv", "sample 2", "'x'")
    records = [{"id": "a1", "band_1": [1.0, 2.0, "3", 4.0]}]
    path = write(tmp_path, "train.json", json.dumps(records))
    one_line_error(lambda: consume(A.read_json_bands(path, bands=["band_1"])), "train.json",
                   "sample a1", "band_1")


def test_wrong_length(tmp_path):
    path = write(tmp_path, "fer.csv", "emotion,pixels\n0,1 2 3 4\n3,1 2 3\n")
    one_line_error(lambda: consume(A.read_pixel_strings(path)), "fer.csv", "sample 2",
                   "3 pixels, not 4")
    records = [{"id": "a1", "band_1": [1.0] * 4, "band_2": [1.0] * 4},
               {"id": "b2", "band_1": [1.0] * 4, "band_2": [1.0] * 3}]
    path = write(tmp_path, "train.json", json.dumps(records))
    one_line_error(lambda: consume(A.read_json_bands(path)), "train.json", "sample b2",
                   "band_2 has 3 values, not 4")
    np.save(tmp_path / "a.npy", np.zeros((6, 4, 4), np.float16))
    np.save(tmp_path / "b.npy", np.zeros((6, 4, 5), np.float16))
    one_line_error(lambda: consume(A.read_npy_files(tmp_path, ["a", "b"])), "b.npy", "sample b",
                   "[6, 4, 5]")
    path = write(tmp_path, "px.csv", "pixel0,pixel1,pixel2\n1,2,3\n")
    one_line_error(lambda: consume(A.read_pixel_columns(path)), "px.csv", "3 values",
                   "not a square")
    one_line_error(lambda: consume(A.read_pixel_columns(path, shape=(2, 2))), "px.csv", "[2, 2]")


def test_nan_or_inf_in_a_band(tmp_path):
    records = [{"id": "ok", "band_1": [1.0] * 4}, {"id": "bad", "band_1": [1.0, float("nan"),
                                                                            1.0, 1.0]}]
    path = write(tmp_path, "train.json", json.dumps(records))  # json writes NaN as NaN
    one_line_error(lambda: consume(A.read_json_bands(path, bands=["band_1"])), "train.json",
                   "sample bad", "NaN or inf in band_1")
    bands = np.zeros((6, 4, 4), np.float16)
    bands[4, 1, 1] = np.inf
    np.save(tmp_path / "c.npy", bands)
    one_line_error(lambda: consume(A.read_npy_files(tmp_path, ["c"])), "c.npy", "sample c",
                   "band 4")
    path = write(tmp_path, "train.csv", "id,pixel0,pixel1,pixel2,pixel3\nq,1,2,3,4\nr,1,,3,4\n")
    one_line_error(lambda: consume(A.read_pixel_columns(path, id_column="id")), "train.csv",
                   "sample r", "pixel1")


def test_nan_in_a_parquet_band(tmp_path):
    frame = pd.DataFrame({"image_id": ["a", "b"], "0": [1.0, 2.0], "1": [1.0, np.nan],
                          "2": [0.0, 1.0], "3": [0.0, 0.0]})
    (tmp_path / "p.parquet").write_bytes(L.parquet_bytes(frame, row_group=1))
    one_line_error(lambda: consume(A.read_parquet(tmp_path / "p.parquet")), "p.parquet",
                   "sample b", "NaN or inf")


def test_values_a_dtype_cannot_hold_and_broken_headers(tmp_path):
    path = write(tmp_path, "train.csv", "pixel0,pixel1,pixel2,pixel3\n1,2,3,300\n")
    one_line_error(lambda: consume(A.read_pixel_columns(path)), "train.csv", "sample 1", "300",
                   "uint8", "pixel dtype")
    assert consume(A.read_pixel_columns(path, dtype="float32"))[0].bands.max() == 300
    path = write(tmp_path, "gap.csv", "pixel0,pixel1,pixel3,pixel4\n1,2,3,4\n")
    one_line_error(lambda: consume(A.read_pixel_columns(path)), "gap.csv", "2 is missing")
    path = write(tmp_path, "none.csv", "label,value\n1,2\n")
    one_line_error(lambda: consume(A.read_pixel_columns(path)), "none.csv", "no pixel columns")
    path = write(tmp_path, "ragged.csv", "pixel0,pixel1,pixel2,pixel3\n1,2,3,4\n1,2,3,4,5\n")
    one_line_error(lambda: consume(A.read_pixel_columns(path)), "ragged.csv", "line 3")


def test_damaged_json_is_named(tmp_path):
    path = write(tmp_path, "train.json", '[{"id": "a", "band_1": [1, 2, 3, 4]}, {"id": "b", "ba')
    one_line_error(lambda: consume(A.read_json_bands(path, bands=["band_1"])), "train.json",
                   "record 1", "re-download")
    path = write(tmp_path, "obj.json", '{"id": "a"}')
    one_line_error(lambda: consume(A.json_records(path)), "obj.json", "JSON array")
    path = write(tmp_path, "sep.json", '[{"id": "a"} {"id": "b"}]')
    one_line_error(lambda: consume(A.json_records(path)), "sep.json", "after record 0")
    assert consume(A.json_records(write(tmp_path, "empty.json", " [ ] "))) == []


def test_missing_npy_file_names_the_sample(tmp_path):
    one_line_error(lambda: consume(A.read_npy_files(tmp_path, ["abc"], pattern="{id[0]}/{id}.npy")),
                   "a/abc.npy", "sample abc", "is the data complete")
    (tmp_path / "x.npy").write_bytes(b"not numpy")
    one_line_error(lambda: consume(A.read_npy_files(tmp_path, ["x"])), "x.npy", "sample x",
                   "re-download")


def test_text_in_a_parquet_pixel_column(tmp_path):
    frame = pd.DataFrame({"image_id": ["a", "b"], "0": ["1", "2"], "1": ["3", "four"],
                          "2": ["0", "1"], "3": ["0", "0"]})
    (tmp_path / "t.parquet").write_bytes(L.parquet_bytes(frame, row_group=2))
    one_line_error(lambda: consume(A.read_parquet(tmp_path / "t.parquet")), "t.parquet",
                   "sample b", "'four'")
    image = io.BytesIO()
    Image.new("L", (2, 2)).save(image, format="PNG")
    (tmp_path / "bad.parquet").write_bytes(image.getvalue())
    one_line_error(lambda: consume(A.read_parquet(tmp_path / "bad.parquet")), "bad.parquet",
                   "not a readable parquet")


@pytest.mark.parametrize("slug", sorted(L.LAYOUTS))
def test_each_layout_ships_zipped_as_it_unpacks(tmp_path, slug):
    from imgcomp.archives import extract

    L.LAYOUTS[slug](tmp_path / "zip", zipped=True)
    L.LAYOUTS[slug](tmp_path / "flat", zipped=False)
    (archive,) = (tmp_path / "zip").iterdir()
    assert archive.name == f"{slug}.zip"
    extract(archive, tmp_path / "out", 1 << 30, nested=False)
    files = sorted(p.relative_to(tmp_path / "flat") for p in (tmp_path / "flat").rglob("*")
                   if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*")
                           if p.is_file())
    for rel in files:
        if rel.suffix != ".7z":  # 7z archives carry their write time
            assert (tmp_path / "out" / rel).read_bytes() == (tmp_path / "flat" / rel).read_bytes()
