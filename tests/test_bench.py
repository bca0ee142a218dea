"""`make bench` (benchmarks/bench.py) measures what its rows claim: its op counter counts exactly,
each ratio's two sides time the same model on the same batches (the same photos for the loader,
the same pixels for draft decoding), and the table prints the figures the JSON holds. A quick
subset runs end to end at a tiny scale; no speed is asserted (a noisy machine would flake)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from helpers import REPO
from support import dispatched_ops

BENCH = REPO / "benchmarks/bench.py"


def bench(tmp_path, only: str, timeout: int = 600) -> tuple[dict, str]:
    """`python benchmarks/bench.py --only ONLY` at scale 0.02 in `tmp_path` (with params.yaml,
    the recipe it measures): (its JSON, its table)."""
    import shutil

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    env = {**os.environ, "IMGCOMP_BENCH_SCALE": "0.02", "NO_ALBUMENTATIONS_UPDATE": "1"}
    proc = subprocess.run([sys.executable, str(BENCH), "--only", only, "--out",
                           str(tmp_path / "b.json"), "--project", str(REPO)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / "b.json").read_text()), proc.stdout


def table_rows(stdout: str, label: str) -> list[list[str]]:
    """The cells after `label` in each table line that starts with it, in order."""
    return [line.strip()[len(label):].split() for line in stdout.splitlines()
            if line.strip().startswith(label)]


def test_the_op_counter_counts_each_dispatched_op_exactly():
    a, b = torch.ones(4), torch.ones(4)
    assert dispatched_ops(lambda: None) == 0
    assert dispatched_ops(lambda: a + b) == 1
    assert dispatched_ops(lambda: [a + b for _ in range(7)]) == 7
    assert dispatched_ops(lambda: (a * b).sum()) == 2
    assert dispatched_ops(lambda: a.view(2, 2)) == 1  # host-side work counts too
    assert dispatched_ops(lambda: a + b) == 1  # each call counts from zero
    out = []
    assert dispatched_ops(lambda: out.append(a + b)) == 1
    assert torch.equal(out[0], torch.full((4,), 2.0))  # the ops ran, with their results


@pytest.mark.e2e
def test_a_quick_bench_run_times_both_sides_of_each_ratio_alike(tmp_path):
    r, stdout = bench(tmp_path, "loader,train,draft")
    assert {"loader", "train", "augment_alone", "draft"} <= set(r)
    assert not {"memory", "footprint", "run_shape", "accuracy"} & set(r)  # --only: no more
    assert [row["backend"] for row in r["train"]] == ["device", "albumentations"] * (
        2 if r["device"] == "cuda" else 1)  # one model on CPU, two on CUDA
    for row in r["train"]:
        # the pipeline and the bare step: the same network, stepped on batches of one shape
        assert row["pipeline_side"] == row["bare_side"]
        assert row["pipeline_side"]["parameters"] > 0
        assert row["pipeline_side"]["batch_shapes"] == [[row["batch"], 3, row["size"], row["size"]]]
        # EMA alone adds ops to the pipeline's step: the two counts are not of one step
        assert row["ops_per_step"] > row["bare_ops_per_step"] > 0
    # the table prints the JSON's figures, row by row
    assert [cells[:2] for cells in table_rows(stdout, "tensor ops per step, the same two")] == [
        [str(t["ops_per_step"]), str(t["bare_ops_per_step"])] for t in r["train"]]
    lo = r["loader"]  # the cache and the naive loader: batches of one shape, from one set of photos
    assert lo["ours_batch_shape"] == lo["naive_batch_shape"]
    assert lo["ours_batch_shape"][1:3] == [lo["size"], lo["size"]]  # at the row's stated size
    loader_rows = table_rows(stdout, "loader images/s (cache vs PIL decode each epoch)")
    assert [cells[:3] for cells in loader_rows] == [
        [str(lo["ours_images_per_s"]), str(lo["naive_images_per_s"]), str(lo["ratio"])]]
    dr = r["draft"]  # draft mode's speed is not bought with other pixels
    assert 0 < dr["draft_vs_full_mean_abs_levels"] < 2
    assert r["augment_alone"]["images_per_s"] > 0


@pytest.mark.slow
@pytest.mark.e2e
def test_the_memory_and_footprint_rows_measure_what_they_claim(tmp_path):
    r, _ = bench(tmp_path, "memory,footprint", timeout=1200)
    rows = r["memory"]["rows"]
    assert [row["data"] for row in rows] == ["1x", "2x", "4x"]
    assert [row["images"] for row in rows] == [rows[0]["images"] * k for k in (1, 2, 4)]
    fp = r["footprint"]  # hardlinked: the DVC cache adds no second copy once relinked
    assert fp["total_mb"] < fp["archive_mb"] + fp["outputs_mb"] + fp["dvc_cache_growth_mb"]
    # the package ships the checkpoints' bytes: a full run adds its models once, not twice
    assert fp["models_mb"] > 0 and fp["full_run_added_over_models"] < 1.5


@pytest.mark.e2e
def test_the_small_data_row_scores_three_averagings_of_one_competition(tmp_path):
    """One competition made once, trained three times (the averaging rule, ema 0, the fixed
    decay it replaced); the table prints the JSON's CV scores."""
    r, stdout = bench(tmp_path, "small_data")
    sd = r["small_data"]
    assert sd["train_images"] == 300 and sd["classes"] == 40 and sd["epochs"] == 1
    assert {sd[k]["metric"] for k in ("rule", "ema_0", "fixed")} == {"map@5"}
    first = table_rows(stdout, "small data")[0]
    assert first[-7:-4] == [str(sd["rule"]["cv"]), str(sd["ema_0"]["cv"]),
                            str(round(sd["rule"]["cv"] - sd["ema_0"]["cv"], 4))]


def test_the_classical_row_trains_the_cnn_alone_and_beside_the_linear_member(tmp_path):
    """One competition of 4 images a class, trained as the CNN alone, the CNN beside the linear
    member (weighted ensemble) and the linear member alone; the table prints the JSON's CVs."""
    r, stdout = bench(tmp_path, "classical")
    cl = r["classical"]
    assert cl["train_images"] == 160 and cl["classes"] == 40 and cl["epochs"] == 1
    assert {cl[k]["metric"] for k in ("cnn", "with_linear", "linear")} == {"map@5"}
    first = table_rows(stdout, "classical: CNN + linear vs CNN alone")[0]
    assert first[-5:-2] == [str(cl["with_linear"]["cv"]), str(cl["cnn"]["cv"]),
                            str(round(cl["with_linear"]["cv"] - cl["cnn"]["cv"], 4))]


def test_the_meta_row_trains_one_network_with_and_without_the_columns(tmp_path):
    """One competition whose label lives in its tables, lenet trained with and without its
    columns in one run; the table prints the JSON's two CVs and their difference."""
    r, stdout = bench(tmp_path, "meta")
    me = r["meta"]
    assert me["train_images"] == 160 and me["epochs"] == 1 and me["metric"] == "accuracy"
    first = table_rows(stdout, "meta: CV accuracy with the columns vs image alone")[0]
    assert first[-6:-3] == [str(me["with_meta"]), str(me["image_alone"]),
                            str(round(me["with_meta"] - me["image_alone"], 4))]


@pytest.mark.e2e
def test_the_distill_row_scores_both_on_one_split_and_times_both_packages_alike(tmp_path):
    """The student and the ensemble scored on digits' same held-out rows; the two packages
    timed on the same decoded images, the ensemble's with every (model, fold) and its TTA, the
    student's one network and one view; the table prints the JSON's figures."""
    r, stdout = bench(tmp_path, "distill")
    d = r["distill"]
    assert (d["test_rows"], d["metric"], d["student_model"]) == (450, "accuracy", "lenet")
    assert d["difference"] == pytest.approx(d["student_test"] - d["ensemble_test"], abs=1e-6)
    e, s = d["ensemble_package"], d["student_package"]
    assert (e["items"], e["views"]) == (len(d["models"]) * len(d["folds"]), len(d["tta"]))
    assert (s["items"], s["views"]) == (1, 1) and e["views"] > 1
    assert d["images"] == 204  # 10,240 at scale 0.02
    assert d["speedup"] == round(s["images_per_s"] / e["images_per_s"], 2)
    first, second = table_rows(stdout, "distill: student vs ensemble")[0], table_rows(
        stdout, "package images/s")[0]
    assert first[-5:-2] == [str(d["student_test"]), str(d["ensemble_test"]), str(d["difference"])]
    assert second[-5:-2] == [str(s["images_per_s"]), str(e["images_per_s"]), str(d["speedup"])]


def test_scale_bson_row_streams_cdiscount_and_extrapolates(tmp_path):
    """make bench's BSON rows at two tiny sizes: Cdiscount's files are written (pictures of
    1 to 4 per product, 180 px JPEGs), `new` enters them and prepare decodes every picture;
    the extrapolation is linear in pictures from the larger row. No speed is asserted."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import scale

    out = scale.measure(["bson"], products=[24, 48])["bson"]
    small, big = out["rows"]
    assert (small["products"], big["products"]) == (24, 48)
    assert 24 < small["pictures"] < 4 * 24 + 4 * 3 and big["pictures"] > small["pictures"]
    assert big["cache_bytes_per_picture"] >= 74 * 74 * 3 // 2  # compressed noise stays large
    assert 0 < big["prepare_peak_mb"] < 2048
    ex = out["cdiscount_extrapolated"]
    pictures = ex["train_pictures"] + ex["test_pictures"]
    assert ex["new_prepare_hours"] == round(big["us_per_picture"] * pictures / 1e6 / 3600, 1)
    assert out["per_picture_ratio"] == round(big["us_per_picture"] / small["us_per_picture"], 2)
    slope = (big["prepare_peak_mb"] - small["prepare_peak_mb"]) / (big["pictures"]
                                                                   - small["pictures"])
    assert ex["prepare_peak_gb"] == round(
        (big["prepare_peak_mb"] + slope * (pictures - big["pictures"])) / 1024, 1)
