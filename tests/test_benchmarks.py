"""The benchmark code runs (numbers are measured in benchmarks/, not asserted here)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_er
from benchmarks import dst_overhead
from benchmarks import keras_file_size
from benchmarks import knobs
from benchmarks import lanes
from benchmarks import load_time
from benchmarks import roofline
from benchmarks import sparse_inference
from benchmarks import worker
from benchmarks.__main__ import markdown
from benchmarks.__main__ import update_readme
from keras_er.architectures import register_architecture
from keras_er.architectures import unregister_architecture

REPO = Path(__file__).resolve().parents[1]


def test_worker_measures_ratios_for_every_variant():
    result = worker.throughput("resnet20", repeats=1, batch_size=4, warmup=1)
    assert set(result["train_ratio"]) == {"masked", "popup"}
    assert set(result["train_images_per_s"]) == {"dense", "masked", "popup"}
    assert set(result["infer_images_per_s"]) == {"dense", "masked"}  # popup is inferred like masked
    speed = result["train_images_per_s"]
    for variant, ratio in result["train_ratio"].items():  # a ratio is the variant's speed over dense's
        assert math.isfinite(ratio) and ratio == pytest.approx(speed[variant] / speed["dense"])
    infer = result["infer_images_per_s"]
    assert result["infer_ratio"]["masked"] == pytest.approx(infer["masked"] / infer["dense"])
    flops = result["train_flops_per_image"]
    assert flops == pytest.approx(0.245e9, rel=0.01)  # 3 x forward, forward = 2 x ResNet20's multiply-adds
    assert result["train_gflops"] == pytest.approx(flops * speed["dense"] / 1e9)


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
        "train_flops_per_image": 0.245e9,
        "train_gflops": 24.5,
        "model_gemm_gflops": 40.0,
        "jit_compile": "True",
    }
    results = {
        "machine": {"cpu": "cpu", "cores": 2, "isa": ["avx2"], "python": "3", "keras": keras.__version__},
        "backends": {
            "jax": {
                "throughput": {"resnet20": throughput},
                "peak_rss_mib": {"resnet20": {"dense": 100, "masked": 101, "popup": 102}},
                "gemm_gflops": 50.0,
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
    assert "| jax | resnet20 | XLA | 100 | 24.5 | 50.0 | 49% | 61% | 1.00 | 0.90 | 1.00 | 1.01 |" in text
    assert "ISA avx2" in text and "GFLOP per train image: resnet20 0.245" in text
    assert "| erk_0.1 | 0.110 | 0.150 |" in text


@pytest.mark.slow
def test_the_command_writes_json_markdown_and_png(tmp_path):
    (tmp_path / "README.md").write_text("intro\n<!-- bench-table -->\nold table\n<!-- /bench-table -->\nrest\n")
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
            "--readme",
            str(tmp_path / "README.md"),
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["backends"][keras.backend.backend()]["gemm_gflops"] > 0
    assert keras.backend.backend() in results["backends"]
    assert (tmp_path / "results.png").read_bytes()[:4] == b"\x89PNG"
    readme = (tmp_path / "README.md").read_text()
    assert "old table" not in readme and "GEMM" in readme and readme.endswith("rest\n")
    assert "masked / dense train" in (tmp_path / "results.md").read_text()


def test_the_performance_page_shows_the_committed_run():
    readme = (REPO / "docs" / "performance.md").read_text()
    table = readme.split("<!-- bench-table -->\n")[1].split("<!-- /bench-table -->")[0]
    assert table == (REPO / "benchmarks" / "results" / "results.md").read_text()


def _hand_counted_model(data_format="channels_last", size=8, classes=5):
    shape = (size, size, 3) if data_format == "channels_last" else (3, size, size)
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(4, 3, padding="same", data_format=data_format)(inputs)  # 8x8x4 outputs x 27 MACs
    x = keras.layers.Conv2D(2, 1, strides=2, data_format=data_format)(x)  # 4x4x2 outputs x 4 MACs
    x = keras.layers.DepthwiseConv2D(3, padding="same", data_format=data_format)(x)  # 4x4x2 outputs x 9 MACs
    x = keras.layers.BatchNormalization(axis=-1 if data_format == "channels_last" else 1)(x)  # not counted
    x = keras.layers.GlobalAveragePooling2D(data_format=data_format)(x)
    return keras.Model(inputs, keras.layers.Dense(classes)(x))  # 5 outputs x 2 MACs


HAND_MACS = 8 * 8 * 4 * 27 + 4 * 4 * 2 * 4 + 4 * 4 * 2 * 9 + 5 * 2  # 7338


def test_flops_are_counted_from_the_architecture():
    model = _hand_counted_model()
    assert roofline.forward_flops(model) == 2 * HAND_MACS == 14676
    assert roofline.train_flops(model) == 3 * 2 * HAND_MACS
    assert roofline.forward_flops(_hand_counted_model("channels_first")) == 2 * HAND_MACS
    masked = keras_er.sparsify(model, density=0.5)  # masked layers are counted dense, as they run
    assert roofline.forward_flops(masked) == 2 * HAND_MACS


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_model_gemm_shapes_are_the_layers_im2col_matmuls(data_format):
    model = _hand_counted_model(data_format)
    shapes = [roofline.layer_gemm_shapes(layer, batch=2) for layer in model.layers if roofline._linear_kind(layer)]
    # (positions, fan-in, outputs): conv 3x3 3->4 on 8x8, conv 1x1 4->2 stride 2, depthwise 3x3 on 2 channels, dense
    assert shapes == [(2 * 64, 27, 4), (2 * 16, 4, 2), (2 * 16 * 2, 9, 1), (2, 2, 5)]
    assert sum(m * k * n for m, k, n in shapes) == 2 * HAND_MACS
    assert 0 < roofline.model_gemm_gflops(model, batch=2, repeats=1) < 1e5


def test_keras_layers_twin_swaps_keras_er_layers_for_keras_own_with_the_same_outputs():
    from keras_er.models import ARCHITECTURES

    model = ARCHITECTURES["resnet20"](input_shape=(8, 8, 3), classes=3)
    twin = knobs.keras_layers_twin(model)
    kinds = {type(layer) for layer in twin.layers}
    assert keras.layers.Conv2D in kinds and keras.layers.BatchNormalization in kinds
    assert not any(kind.__module__.startswith("keras_er") for kind in kinds)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(twin(x, training=True)),
        keras.ops.convert_to_numpy(model(x, training=True)),
        atol=1e-4,
    )


def test_resnet20_flops_match_the_published_count():
    from keras_er.models import ARCHITECTURES

    macs = roofline.forward_flops(ARCHITECTURES["resnet20"]()) / 2
    assert 40e6 < macs < 42e6  # He et al.: ~41 M multiply-adds at 32x32


def test_gemm_bound_is_measured(tmp_path):
    assert roofline.gemm_gflops(n=64, repeats=1) > 0
    bound = roofline.gemm_bound(n=64)
    assert bound["gflops"] == max(bound["threads_all"], bound["threads_1"]) > 0


def test_cpu_facts_read_model_cores_and_isa(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 fma avx512f amx_tile\n")
    facts = roofline.cpu_facts(cpuinfo)
    assert facts["cpu"] == "Test CPU" and facts["cores"] >= 1
    assert facts["isa"] == ["avx2", "fma", "avx512f", "amx_tile"]


def test_knob_measure_times_both_layouts_with_the_same_losses():
    register_architecture(
        "knob_tiny", lambda input_shape, classes: _hand_counted_model(size=input_shape[0], classes=classes)
    )
    try:
        last = knobs.measure("knob_tiny", {}, repeats=1, batch_size=4, warmup=2)
        first = knobs.measure("knob_tiny", {"data_format": "channels_first"}, repeats=1, batch_size=4, warmup=2)
    finally:
        unregister_architecture("knob_tiny")
    assert last["images_per_s"] > 0 and last["train_gflops"] > 0
    rows = [
        {"name": knobs.KERAS_DEFAULT, "models": {"knob_tiny": last}},
        {"name": "channels_first", "models": {"knob_tiny": first}},
    ]
    knobs.check_losses(rows)
    assert first["correct"] and last["correct"]


def test_knobs_table_marks_the_fastest_correct_setting():
    def result(speed, loss):
        return {"images_per_s": speed, "train_gflops": speed / 10, "losses": [loss, loss]}

    rows = [
        {"name": knobs.KERAS_DEFAULT, "models": {"m": result(10, 2.0)}},
        {"name": "wrong but fast", "models": {"m": result(50, 3.0)}},
        {"name": "faster", "models": {"m": result(20, 2.0)}},
        {"name": "crashed", "models": {}, "error": "CalledProcessError"},
    ]
    knobs.check_losses(rows)
    assert knobs.best(rows, "m")["name"] == "faster"
    results = {
        "machine": {"cpu": "cpu", "cores": 2, "isa": []},
        "backends": {"jax": {"gemm_gflops": 4.0, "models": ["m"], "rows": rows}},
    }
    text = knobs.markdown(results)
    assert "| jax | m | **faster** | 20.0 | 2.0 | 50% | 2.00 | yes |" in text
    assert "| jax | m | wrong but fast | 50.0 | 5.0 | 125% | 5.00 | NO |" in text
    assert "| jax | m | crashed | CalledProcessError |" in text


def test_update_readme_replaces_only_the_table(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- bench-table -->\nold\n<!-- /bench-table -->\nafter\n")
    update_readme(readme, "new\n")
    assert readme.read_text() == "intro\n<!-- bench-table -->\nnew\n<!-- /bench-table -->\nafter\n"


def test_a_fresh_process_load_reports_its_seconds_and_the_reference_logits():
    result = load_time.run_child(keras.backend.backend(), "zoo.load", load_time.FLAGSHIP)
    assert result["max_logit_error"] < 1e-4
    assert 0 < result["import_keras_s"] < result["seconds"]
    assert (result["xla_compiles"] is None) == (keras.backend.backend() != "jax")


def test_load_time_table_marks_the_target():
    def way(seconds, compiles):
        return {
            "median_s": seconds,
            "runs": [{"seconds": seconds, "xla_compiles": compiles, "max_logit_error": 1e-6, "load_average": 2.0}],
        }

    results = {
        "machine": {"cpu": "cpu", "cores": 2},
        "repeats": 1,
        "backends": {
            "jax": {"entry": "e", "ways": {"zoo.load": way(6.0, 28), "initializers run": way(12.0, 60)}},
            "torch": {"entry": "e", "ways": {"zoo.load": way(5.0, None), "initializers run": way(5.5, None)}},
        },
    }
    lines = load_time.markdown(results).splitlines()
    assert lines[2] == "| jax | e | 6.00 | 12.00 | 0.50 | 28 / 60 | 1.0e-06 | ≤ 12 s: met |"
    assert lines[3] == "| torch | e | 5.00 | 5.50 | 0.91 | n/a | 1.0e-06 | no slower than initializers run |"
    assert "2 cores (1-minute load average 2.0-2.0)" in lines[-1]


def test_export_table_reports_sizes_ratios_and_targets():
    from benchmarks import export

    def size(litert, onnx):
        entry = lambda n: {"bytes": n, "max_abs_diff": 1e-6}
        return {
            "litert": entry(litert),
            "litert_dense_storage": entry(4000),
            "onnx": entry(onnx),
            "tf_saved_model": entry(9000),
        }

    results = {
        "sizes": {"flagship": size(1000 * 1024 // 4, 1200), "resnet20_dense": size(1000 * 1024, 4000)},
        "latency_ms": {
            "flagship vs resnet20_dense": {f: {"flagship": 1.0, "resnet20_dense": 2.0} for f in export.FORMATS}
        },
    }
    text = export.markdown(results)
    assert "| flagship / resnet20_dense | 0.250 | 0.300 | 1.000 | ≤ 0.3: met |" in text
    assert "Flagship LiteRT file: 250 KiB (target ≤ 300 KiB: met)" in text
    assert "| flagship vs resnet20_dense | onnxruntime | 1.00 | 2.00 | 0.50 |" in text


def test_a_sparse_keras_file_stores_one_byte_per_mask_weight(tmp_path):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(32, 3, activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    outputs = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x))
    result = keras_file_size.measure(keras.Model(inputs, outputs), 0.1, tmp_path)
    assert result["mask_bytes_per_weight"] == 1
    assert result["sparse_bytes"] <= keras_file_size.TARGET_RATIO * result["dense_bytes"]
    assert result["reload_max_error"] == 0
    assert abs(result["global_density"] - 0.1) < 1e-3


def test_keras_file_size_table_marks_the_target():
    row = {"model": "ResNet50", "density": 0.1, "mask_bytes_per_weight": 1.0, "reload_max_error": 0.0}
    results = {
        "backends": {
            "jax": {**row, "dense_bytes": 100e6, "sparse_bytes": 125e6},
            "torch": {**row, "dense_bytes": 100e6, "sparse_bytes": 199e6},
        }
    }
    lines = keras_file_size.markdown(results).splitlines()
    assert lines[2] == "| jax | ResNet50 | 0.1 | 100.0 | 125.0 | 1.250 | 1 | 0.0e+00 | ≤ 1.3x: met |"
    assert lines[3].endswith("| 1.990 | 1 | 0.0e+00 | ≤ 1.3x: MISSED |")


def test_lanes_table_reports_both_ways_and_their_ratio():
    result = {
        "backend": "tensorflow",
        "cores": [0, 1],
        "steps": 30,
        "rounds": {"lanes": [[500.0, 510.0]], "one process": [[800.0]]},
        "images_per_second": {"lanes": 1010.0, "one process": 800.0},
        "lanes_over_one_process": 1010.0 / 800.0,
    }
    lines = lanes.markdown(result).splitlines()
    assert lines[0].startswith("Training throughput on 2 cores, tensorflow")
    assert lines[4:6] == ["| lanes | 2 × 1 | 1010 |", "| one process | 1 × 2 | 800 |"]
    assert lines[-1] == "Lanes give 1.26× the images per second of one process."


def test_lanes_need_two_cores_and_hold_each_process_to_its_threads():
    with pytest.raises(ValueError, match="`cores` must name at least two cores"):
        lanes.measure(cores=[0])
    one = lanes.thread_environment(1)
    assert one["TF_NUM_INTRAOP_THREADS"] == one["OMP_NUM_THREADS"] == "1"
    assert one["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=false"
    assert lanes.thread_environment(2)["OMP_NUM_THREADS"] == "2"


@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_lanes_run_both_ways_in_pinned_processes():
    result = lanes.measure(keras.backend.backend(), steps=1, rounds=1, cores=sorted(os.sched_getaffinity(0))[:2])
    assert len(result["rounds"]["lanes"][0]) == 2 and len(result["rounds"]["one process"][0]) == 1
    assert all(rate > 0 for rates in result["rounds"].values() for rate in rates[0])
