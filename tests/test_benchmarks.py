"""The benchmark code runs (numbers are measured in benchmarks/, not asserted here)."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from benchmarks import dst_overhead
from benchmarks import sparse_inference
from benchmarks import worker
from benchmarks.__main__ import markdown
from keras_er.architectures import register_architecture
from keras_er.architectures import unregister_architecture

REPO = Path(__file__).resolve().parents[1]


def test_worker_measures_ratios_for_every_variant():
    result = worker.throughput("resnet20", repeats=1, batch_size=4, warmup=1)
    assert set(result["train_ratio"]) == {"masked", "popup"}
    assert all(ratio > 0 for ratio in result["train_ratio"].values())
    assert result["infer_ratio"]["masked"] > 0


def _tiny_cnn(input_shape, classes):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes)(x))


def test_dst_overhead_reports_every_method_on_a_tiny_setting():
    register_architecture("dst_bench_tiny_cnn", _tiny_cnn)  # resnet20 takes ~50 s to compile thrice on JAX
    try:
        result = dst_overhead.measure("dst_bench_tiny_cnn", steps=4, update_every=2, batch_size=4, rounds=1)
    finally:
        unregister_architecture("dst_bench_tiny_cnn")
    assert result["backend"] == keras.backend.backend()
    assert set(result["images_per_s"]) == {"static", "set", "rigl"}
    assert set(result["time_ratio"]) == {"set", "rigl"}
    assert all(value > 0 for value in [*result["images_per_s"].values(), *result["time_ratio"].values()])
    assert result["updates_per_epoch"] == {"set": 2, "rigl": 2}  # steps 2 and 4 of each timed epoch
    assert set(result["seconds_per_update"]) == {"set", "rigl"}
    json.dumps(result)  # what the worker writes
    row = dst_overhead.markdown([result]).splitlines()[2]
    assert row.startswith(f"| {keras.backend.backend()} | dst_bench_tiny_cnn ERK 0.1 | 4 × 4 | 2 |")


def test_file_ratios_track_density():
    ratios = worker.file_ratios(densities=(0.05, 0.2))["ratio"]
    assert ratios["erk_0.05"] < ratios["erk_0.2"] < 0.3


def test_compactable_fraction_counts_dead_channels():
    import numpy as np

    mask = np.ones((3, 3, 4, 8), bool)
    mask[..., :2] = False  # two dead output channels
    assert sparse_inference.compactable_fraction([mask]) == pytest.approx(2 / 8)


def test_markdown_report_renders():
    throughput = {
        "train_images_per_s": {"dense": 100.0},
        "train_ratio": {"masked": 1.0, "popup": 0.9},
        "infer_ratio": {"masked": 1.0},
    }
    results = {
        "machine": {"cpu": "cpu", "cores": 2, "python": "3", "keras": keras.__version__},
        "backends": {
            "jax": {
                "throughput": {"resnet20": throughput},
                "peak_rss_mib": {"resnet20": {"dense": 100, "masked": 101, "popup": 102}},
            }
        },
        "file_ratio": {"ratio": {"erk_0.1": 0.11, "popup_0.5x0.2": 0.43}},
        "mask_sampling_s": {
            "resnet50": {"weights": 25e6, "erk": 0.1, "uniform": 0.1, "balanced": 0.1, "pyramidal": 0.1}
        },
        "sparse_inference": {
            "csr_vs_dense_matmul": {"shape": [1, 2, 3], "dense_ms": 1.0, "0.1": {"sparse_ms": 2.0, "speedup": 0.5}},
            "flagship_compactable_fraction": 0.0,
        },
    }
    text = markdown(results)
    assert "| jax | resnet20 | 100 | 1.00 | 0.90 | 1.00 | 1.01 |" in text
    assert "| erk_0.1 | 0.110 | 0.150 |" in text


@pytest.mark.slow
def test_the_command_writes_json_markdown_and_png(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--backends",
            keras.backend.backend(),
            "--models",
            "resnet20",
            "--repeats",
            "1",
            "--no-memory",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert keras.backend.backend() in results["backends"]
    assert (tmp_path / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert "masked / dense train" in (tmp_path / "results.md").read_text()


def test_readme_benchmark_table_is_the_committed_run():
    readme = (REPO / "README.md").read_text()
    table = readme.split("<!-- bench-table -->\n")[1].split("<!-- /bench-table -->")[0]
    assert table == (REPO / "benchmarks" / "results" / "results.md").read_text()
