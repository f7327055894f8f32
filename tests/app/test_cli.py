import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_er.app import cli
from keras_er.app import parser as cli_parser
from keras_er.data.specs import class_names
from tests import helpers

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tiny_cifar(tmp_path, monkeypatch):
    return helpers.tiny_cifar(tmp_path, monkeypatch, images=300)


def test_train_export_evaluate_round_trip(tiny_cifar, tmp_path, capsys, monkeypatch):
    run, root = tmp_path / "run", tmp_path / "zoo"
    args = [
        "train",
        "--model",
        "resnet20",
        "--scheme",
        "erk",
        "--density",
        "0.2",
        "--epochs",
        "2",
        "--batch-size",
        "50",
        "--out",
        str(run),
    ]
    assert cli.main(args) == 0
    assert {"config.json", "log.csv", "model.weights.h5", "summary.json", "recipe.json"} <= {
        p.name for p in run.iterdir()
    }
    assert len((run / "log.csv").read_text().strip().splitlines()) == 3
    assert cli.main(["export", str(run), "--root", str(root)]) == 0
    (entry,) = json.loads((root / "index.json").read_text())["entries"]
    card = (root / entry["id"] / "card.md").read_text()
    reproduce = "keras-er " + " ".join(args[:-1] + ["runs/run"])
    assert "## Reproduce" in card and reproduce in card
    assert "2 epochs x the median epoch" in card and "![learning curves](curves.png)" in card
    assert (root / entry["id"] / "curves.png").read_bytes() == (run / "curves.png").read_bytes()
    assert entry["recipe"]["input_normalization"]["mean"] == [125.31, 122.95, 113.87]
    capsys.readouterr()
    monkeypatch.setenv("KERAS_ER_ZOO_DIR", str(root))
    assert cli.main(["evaluate", "--zoo", entry["id"]]) == 0
    printed = capsys.readouterr()
    report = json.loads(printed.out)  # stdout holds the report only
    assert "1/1" in printed.err  # Keras' progress bar (100 images, batches of 256)
    (top1,) = entry["top1"].values()
    assert report["top1"] == pytest.approx(top1) and report["images"] == 100
    assert list(report["per_class"]) == list(class_names("cifar10"))  # every class has test images here
    assert class_names("cifar10")[:2] == ("airplane", "automobile")


def test_resume_refuses_other_settings(tiny_cifar, tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", "--model", "resnet20", "--epochs", "1", "--out", str(run), "--batch-size", "100"]
    assert cli.main(base) == 0
    assert cli.main(base[:-2] + ["--density", "0.3", "--resume", "--batch-size", "100"]) == 2
    assert "other settings" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["train", "--model", "resnet21", "--out", "x"], 2, "invalid choice: 'resnet21'"),
        (["train", "--out", "x"], 2, "--model"),
        (["train", "--model", "resnet20", "--scheme", "snip", "--out", "x"], 2, "invalid choice: 'snip'"),
        (["evaluate"], 2, "one of the arguments --zoo --run is required"),
        (["--backend", "numpy", "list"], 2, "invalid choice: 'numpy'"),
    ],
)
def test_argument_errors_exit_2_with_a_message(argv, code, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == code
    assert message in capsys.readouterr().err


def test_runtime_errors_exit_2_with_a_message(tmp_path, capsys):
    assert cli.main(["train", "--model", "resnet20", "--density", "0", "--out", str(tmp_path / "r")]) == 2
    assert "`density` must be in (0, 1]" in capsys.readouterr().err
    assert cli.main(["evaluate", "--run", str(tmp_path)]) == 2
    assert "is not a finished run" in capsys.readouterr().err


def test_python_dash_m_and_backend_switch(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "KERAS_ER_ZOO_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "keras_er", "--backend", "jax", "list"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "No zoo weights are published yet." in result.stdout


TRAIN = ["train", "--model", "resnet20", "--epochs", "1", "--batch-size", "100"]


def test_train_into_a_run_folder_is_refused_before_anything_is_written(tiny_cifar, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(TRAIN + ["--out", str(run)]) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert cli.main(TRAIN + ["--scheme", "uniform", "--density", "0.05", "--out", str(run)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_resume_with_another_recipe_is_refused(tiny_cifar, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(TRAIN + ["--out", str(run)]) == 0
    recipe = (run / "recipe.json").read_text()
    assert cli.main(TRAIN + ["--lr", "0.05", "--out", str(run), "--resume"]) == 2
    assert "another recipe (learning_rate 0.1 -> 0.05)" in capsys.readouterr().err
    assert (run / "recipe.json").read_text() == recipe


def test_resume_without_a_run_is_a_clear_error(tmp_path, capsys):
    assert cli.main(TRAIN + ["--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "holds no run to continue" in capsys.readouterr().err


def test_dense_popup_is_refused(tmp_path, capsys):
    assert cli.main(TRAIN + ["--scheme", "dense", "--popup", "--out", str(tmp_path / "r")]) == 2
    assert "--popup needs a sparse --scheme" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_export_with_limit_records_no_top1(tiny_cifar, tmp_path, capsys):
    run, root = tmp_path / "run", tmp_path / "zoo"
    assert cli.main(TRAIN + ["--out", str(run)]) == 0
    assert cli.main(["export", str(run), "--root", str(root), "--limit", "64"]) == 0
    (entry,) = json.loads((root / "index.json").read_text())["entries"]
    assert entry["top1"] == {} and entry["top1_first1000"] == {}
    card = (root / entry["id"] / "card.md").read_text()
    assert "top-1 (full test set): not measured" in card
    assert "evaluated on the first 64 test images only" in card


@pytest.mark.parametrize(
    "problem, message",
    [
        ("interrupt", "interrupted (continue it with the same command and --resume)"),
        ("unwritable", "error: [Errno 20] Not a directory"),
        ("corrupt data", "cifar10.npz is not a readable npz file"),
    ],
)
def test_cli_failures_end_with_one_line(tiny_cifar, tmp_path, capsys, monkeypatch, problem, message):
    out = tmp_path / "run"
    if problem == "interrupt":
        from keras_er import training

        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(training, "fit", interrupted)
    elif problem == "unwritable":
        (tmp_path / "a_file").write_text("")
        out = tmp_path / "a_file" / "run"
    else:
        (tiny_cifar / "cifar10.npz").write_bytes(b"not an npz")
    code = cli.main(TRAIN + ["--out", str(out)])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == (130 if problem == "interrupt" else 2)
    assert len(error) == 1 and message in error[0], error


def test_the_same_command_trains_the_same_model(tiny_cifar, tmp_path):
    import h5py

    weights = []
    for name in ("a", "b"):
        assert cli.main(TRAIN + ["--out", str(tmp_path / name)]) == 0
        with h5py.File(tmp_path / name / "model.weights.h5") as handle:
            arrays = []
            handle.visititems(
                lambda key, item, arrays=arrays: (
                    arrays.append((key, item[()])) if isinstance(item, h5py.Dataset) else None
                )
            )
        weights.append(arrays)
    assert [k for k, _ in weights[0]] == [k for k, _ in weights[1]] and weights[0]
    for (key, first), (_, second) in zip(*weights):
        np.testing.assert_array_equal(first, second, err_msg=key)


def _masks_and_kernels(run):
    from keras_er import masks
    from keras_er.app.runs import load_run

    config, model = load_run(run)
    return config, [(to_numpy(layer.mask), to_numpy(layer.kernel)) for layer in masks.masked_layers(model)]


def to_numpy(x):
    import keras

    return keras.ops.convert_to_numpy(x)


def test_train_with_dst_records_it_and_keeps_every_layer_count(tiny_cifar, tmp_path):
    run = tmp_path / "run"
    argv = TRAIN + ["--density", "0.2", "--dst", "set", "--update-every", "1", "--out", str(run)]
    assert cli.main(argv) == 0
    config, layers = _masks_and_kernels(run)
    assert config["dst"] == {"method": "set", "update_every": 1, "drop_fraction": 0.3, "end_fraction": 0.75}
    from keras_er import masks
    from keras_er.app.runs import build_model

    initial = [to_numpy(layer.mask) for layer in masks.masked_layers(build_model(config))]
    assert any((mask != start).any() for (mask, _), start in zip(layers, initial))  # masks moved
    for (mask, kernel), start in zip(layers, initial):
        assert mask.sum() == start.sum()  # each layer keeps its count
        assert (kernel[mask == 0] == 0).all()


def test_resume_refuses_other_dst_settings(tiny_cifar, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(TRAIN + ["--dst", "set", "--out", str(run)]) == 0
    assert cli.main(TRAIN + ["--dst", "rigl", "--out", str(run), "--resume"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_train_with_pruning_at_init_reaches_the_density_exactly(tiny_cifar, tmp_path):
    run = tmp_path / "run"
    argv = TRAIN + ["--density", "0.1", "--prune", "snip", "--out", str(run)]
    assert cli.main(argv) == 0
    config, layers = _masks_and_kernels(run)
    assert config["prune"] == {"method": "snip", "scope": "global", "iterations": 100}
    kept = sum(int(mask.sum()) for mask, _ in layers)
    total = sum(mask.size for mask, _ in layers)
    assert kept == round(0.1 * total)
    assert all((kernel[mask == 0] == 0).all() for mask, kernel in layers)


@pytest.mark.parametrize("extra", [["--popup", "--dst", "set"], ["--scheme", "dense", "--prune", "magnitude"]])
def test_impossible_sparse_training_combinations_are_refused_before_writing(tiny_cifar, tmp_path, capsys, extra):
    run = tmp_path / "run"
    assert cli.main(TRAIN + extra + ["--out", str(run)]) == 2
    assert not run.exists()


@pytest.mark.distributed
def test_train_on_two_devices_records_the_engine_and_writes_one_run(tiny_cifar, tmp_path):
    import keras

    backend = keras.backend.backend()
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "XLA_FLAGS": ""}
    argv = [*TRAIN, "--density", "0.2", "--devices", "2", "--out", str(run)]
    command = [sys.executable, "-m", "keras_er", "--backend", backend, *argv]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    config = json.loads((run / "config.json").read_text())
    engine = {"jax": "keras.distribution.DataParallel", "tensorflow": "tf.distribute.MirroredStrategy"}
    assert config["devices"] == 2 and config["engine"] == engine.get(backend, "torch.distributed (DDP)")
    assert config["processes"] == (2 if backend == "torch" else 1)
    assert (run / "log.csv").read_text().count("\n") == 2  # header + 1 epoch: one process wrote it
    assert result.stdout.count('"accuracy"') == 1  # one final report, from the chief
    _, layers = _masks_and_kernels(run)
    assert all((kernel[mask == 0] == 0).all() for mask, kernel in layers)


def test_conv_path_option_sets_the_mode_for_the_command(tmp_path, monkeypatch):
    from keras_er.layers import conv_paths

    assert cli_parser.CONV_PATHS == conv_paths.MODES
    monkeypatch.setenv("KERAS_ER_ZOO_DIR", str(tmp_path))
    previous = conv_paths.conv_path()
    try:
        assert cli.main(["--conv-path", "matmul", "list"]) == 0
        assert conv_paths.conv_path() == "matmul"
    finally:
        conv_paths.set_conv_path(previous)
    with pytest.raises(SystemExit):
        cli.main(["--conv-path", "im2col", "list"])


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--limit", "0"], "--limit must be a positive integer"),
        (["--seed", "-1"], "seed"),
        (["--popup", "--popup-density", "0"], "--popup-density"),
        (["--density", "nan"], "density"),
    ],
)
def test_bad_values_are_refused_before_the_run_folder_exists(tiny_cifar, tmp_path, capsys, extra, message):
    run = tmp_path / "run"
    assert cli.main(TRAIN + extra + ["--out", str(run)]) == 2
    assert message in capsys.readouterr().err
    assert not run.exists()  # no lock file, no config


@pytest.fixture
def tiny_architecture():
    """A registered architecture small enough that per-layer rounding moves its global density by > 1e-3."""
    import keras

    from keras_er import architectures

    def build(input_shape, classes):
        inputs = keras.Input(input_shape)
        x = keras.layers.Conv2D(5, 3, strides=4)(inputs)  # 135 + 50 weights: ERK 0.1 keeps 19, not 18.5
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(classes)(x))

    architectures.register_architecture("tiny_test_net", build)
    yield "tiny_test_net"
    architectures.unregister_architecture("tiny_test_net")


def test_a_small_registered_architecture_trains_and_saves(tiny_cifar, tmp_path, tiny_architecture):
    run = tmp_path / "run"
    argv = ["train", "--model", tiny_architecture, "--scheme", "erk", "--density", "0.1", "--epochs", "1"]
    assert cli.main(argv + ["--batch-size", "100", "--out", str(run)]) == 0
    assert (run / "model.weights.h5").is_file()


def test_export_refuses_an_existing_id_unless_replace(tiny_cifar, tmp_path, capsys):
    run, root = tmp_path / "run", tmp_path / "zoo"
    assert cli.main(TRAIN + ["--out", str(run)]) == 0
    assert cli.main(["export", str(run), "--root", str(root), "--limit", "20"]) == 0
    before = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert cli.main(["export", str(run), "--root", str(root), "--limit", "20"]) == 2
    assert "already holds resnet20_erk_d0.1_cifar10" in capsys.readouterr().err
    assert {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert cli.main(["export", str(run), "--root", str(root), "--limit", "20", "--replace"]) == 0


def _cells(line):
    return re.split(r"\s{2,}", line.strip())


def test_list_is_an_aligned_table_with_the_readme_densities(capsys, monkeypatch, tmp_path):
    from keras_er.zoo import registry
    from keras_er.zoo import report
    from keras_er.zoo import weight_files

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty Keras cache: no copy of external weights
    assert cli.main(["list"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    names = ["id", "scheme", "density", "dataset", "top-1 % TF", "top-1 % torch", "top-1 % JAX", "weights"]
    assert _cells(header) == names
    entries = registry.load_index()
    assert [_cells(row)[0] for row in rows] == [e["id"] for e in entries]
    density_end = header.index("density") + len("density")  # right-aligned under its header
    assert all(row[:density_end].endswith(_cells(row)[2]) for row in rows)
    weights_start = header.index("weights")
    assert all(row[weights_start - 2 : weights_start] == "  " and row[weights_start] != " " for row in rows)
    readme_density = {
        line.split("|")[1].strip(" `"): line.split("|")[3].strip() for line in report.markdown_table().splitlines()[2:]
    }
    assert {_cells(row)[0]: _cells(row)[2] for row in rows} == readme_density
    popup = next(row for row in rows if "popup" in row)
    assert _cells(popup)[1:3] == ["erk + popup 0.2", "0.1"]  # the weights used, not the ER mask's 0.5
    assert "{" not in "".join(rows)  # top-1 per backend in columns, not a dict
    flagship = next(_cells(row) for row in rows if row.startswith("resnet20_erk_d0.1_cifar10 "))
    assert flagship[4:] == ["83.44", "83.44", "83.44", weight_files.SHIPPED]
    for entry in entries:
        row = next(_cells(row) for row in rows if _cells(row)[0] == entry["id"])
        assert row[-1] == weight_files.weights_status(entry)


def test_list_reads_the_index_without_keras(tmp_path):
    code = (
        "import sys; from keras_er.app.cli import main; code = main(['list']); "
        "print(' '.join(sorted(sys.modules)), file=sys.stderr); sys.exit(code)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = set(result.stderr.split())
    assert "keras_er.zoo.registry" in loaded
    assert not {"keras", "tensorflow", "torch", "jax"} & loaded
    assert result.stdout.startswith("id ")


def test_version_is_the_package_version(capsys):
    import keras_er

    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"keras-er {keras_er.__version__}\n"


@pytest.mark.parametrize(
    "argv, backend, verbose",
    [
        (["--backend", "jax", "evaluate", "--zoo", "x"], "jax", False),
        (["evaluate", "--backend", "jax", "--zoo", "x", "-v"], "jax", True),
        (["--backend", "torch", "-v", "evaluate", "--zoo", "x", "--backend", "jax"], "jax", True),  # after wins
        (["-v", "evaluate", "--zoo", "x"], None, True),
    ],
)
def test_common_options_go_before_or_after_the_command(argv, backend, verbose):
    args = cli.parser().parse_args(argv)
    assert (args.command, args.zoo, args.backend, args.verbose) == ("evaluate", "x", backend, verbose)


def test_help_describes_the_tool_and_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert text.startswith("usage: keras-er") and cli_parser.DESCRIPTION.split(",")[0] in " ".join(text.split())
    assert "examples:" in text and "--version" in text
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: erk)" in text and "(default: 0.1)" in text and "(default: 30)" in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_multi_line_errors_keep_their_lines(capsys, monkeypatch):
    def fails(args):
        raise ValueError("Nothing found. Looked in:\n  - the zoo folder\n  - the Keras cache")

    monkeypatch.setitem(cli.COMMANDS, "list", fails)
    assert cli.main(["list"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "keras-er list: error: Nothing found. Looked in:",
        "  - the zoo folder",
        "  - the Keras cache",
    ]


TF_LINE = re.compile(r"absl::InitializeLog|oneDNN|cpu_feature_guard|^[IWE]\d{4} \d\d:\d\d:", re.MULTILINE)
RUN_MAIN = (
    "import sys; from keras_er.app.cli import main; code = main(); "
    "print('tensorflow imported:', 'tensorflow' in sys.modules, file=sys.stderr); sys.exit(code)"
)


def _keras_er_process(argv, tmp_path, **env):
    """`keras-er argv` in a fresh process; TF_CPP_MIN_LOG_LEVEL unset, as for a user who never set it."""
    env = {**os.environ, "KERAS_ER_DATA": str(tmp_path), "PYTHONPATH": str(REPO), **env}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run([sys.executable, "-c", RUN_MAIN, *argv], cwd=REPO, env=env, capture_output=True, text=True)


@pytest.fixture
def tiny_test_split(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 32, 32, 3)).astype(np.uint8)
    y = np.arange(40) % 10
    np.savez(tmp_path / "cifar10.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    return tmp_path


@helpers.first_backend_pass_only
def test_no_tensorflow_start_up_lines_on_the_jax_backend(tiny_test_split):
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed: nothing would print its notices")
    argv = ["evaluate", "--backend", "jax", "--zoo", "resnet20_erk_d0.1_cifar10", "--limit", "20"]
    result = _keras_er_process(argv, tiny_test_split, KERAS_BACKEND="torch")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["backend"] == "jax"  # --backend after the command
    assert "tensorflow imported: True" in result.stderr  # Keras loaded it (serialising a layer): the check shows
    assert not TF_LINE.search(result.stdout + result.stderr), result.stderr[-3000:]


@helpers.first_backend_pass_only
def test_verbose_keeps_what_tensorflow_prints_at_import(tmp_path):
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed")
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    plain = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env, capture_output=True, text=True)
    notices = {_untimed(line) for line in plain.stderr.splitlines() if TF_LINE.search(line)}
    if not notices:
        pytest.skip("this TensorFlow prints nothing at import")
    argv = ["--backend", "tensorflow", "--conv-path", "auto", "list"]  # the conv path imports keras, so TensorFlow
    quiet = _keras_er_process(argv, tmp_path)
    verbose = _keras_er_process([*argv, "-v"], tmp_path)
    assert quiet.returncode == verbose.returncode == 0, quiet.stderr[-2000:] + verbose.stderr[-2000:]
    assert not TF_LINE.search(quiet.stderr)
    assert notices <= {_untimed(line) for line in verbose.stderr.splitlines()}


def _untimed(line):
    return re.sub(r"^[IWE]\d{4} [\d:.]+\s+\d+ ", "", line)


QUIET_IMPORT = """
import importlib.util, os, sys
sys.path.insert(0, sys.argv[2])
from keras_er import framework_logs
print(framework_logs.quiet(sys.argv[1]), os.environ.get("TF_CPP_MIN_LOG_LEVEL"))
importlib.util.find_spec(sys.argv[1])  # a lookup alone (torch does one) must not use up the silencing
os.write(2, b"before\\n")
importlib.import_module(sys.argv[1])
os.write(2, b"after\\n")
"""


def _quiet_import(tmp_path, module, **env):
    (tmp_path / "noisy.py").write_text("import os\nos.write(2, b'noise at import\\n')\n")
    (tmp_path / "broken.py").write_text("import os\nos.write(2, b'noise\\n')\nraise ImportError('broken on purpose')\n")
    env = {**{key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}, **env}
    command = [sys.executable, "-c", QUIET_IMPORT, module, str(tmp_path)]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    return result.returncode, result.stdout.strip(), result.stderr.splitlines()


def test_quiet_hides_what_the_first_import_writes_to_descriptor_2(tmp_path):
    assert _quiet_import(tmp_path, "noisy") == (0, "True 2", ["before", "after"])


def test_quiet_leaves_everything_to_a_user_who_set_the_level(tmp_path):
    assert _quiet_import(tmp_path, "noisy", TF_CPP_MIN_LOG_LEVEL="0") == (
        0,
        "False 0",
        ["before", "noise at import", "after"],
    )


def test_quiet_keeps_the_traceback_of_a_failing_import(tmp_path):
    code, out, err = _quiet_import(tmp_path, "broken")
    assert code == 1 and out == "True 2"
    assert err[0] == "before" and err[1] == "Traceback (most recent call last):" and "noise" not in err
    assert err[-1] == "ImportError: broken on purpose"


def test_a_reader_that_leaves_early_gets_no_error_message(tmp_path):
    command = [sys.executable, "-m", "keras_er", "list"]
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()  # before the child has imported anything: its first write meets a closed pipe
    err = child.stderr.read().decode()
    assert child.wait() == 1 and err == "", err


def _zoo_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_short_run_is_exported_under_a_tagged_id_that_no_constructor_loads(tiny_cifar, tmp_path, capsys):
    from keras_er import zoo

    run, root = tmp_path / "run", tmp_path / "zoo"
    assert cli.main(TRAIN + ["--limit", "100", "--out", str(run)]) == 0
    assert cli.main(["export", str(run), "--root", str(root)]) == 0
    (entry,) = json.loads((root / "index.json").read_text())["entries"]
    assert entry["id"] == "resnet20_erk_d0.1_cifar10_e1_b100_w0_limit100" and entry["variant"] == "e1_b100_w0_limit100"
    assert "exported resnet20_erk_d0.1_cifar10_e1_b100_w0_limit100" in capsys.readouterr().out
    with pytest.raises(ValueError, match="No published weights for resnet20_erk_d0.1_"):
        zoo.resnet20_erk(0.1, root=root)  # the published id is not taken
    assert zoo.load(entry["id"], root=root).count_params() > 0  # by its id only


def test_a_refused_export_leaves_the_zoo_byte_identical(tiny_cifar, tmp_path, capsys):
    run, root = tmp_path / "run", tmp_path / "zoo"
    assert cli.main(TRAIN + ["--out", str(run)]) == 0
    assert cli.main(["export", str(run), "--root", str(root), "--limit", "20"]) == 0
    before = _zoo_bytes(root)
    log = run / "log.csv"
    log.write_text("\n".join(log.read_text().splitlines()[:1]) + "\n")  # the epoch row gone: not finished
    capsys.readouterr()
    assert cli.main(["export", str(run), "--root", str(root), "--replace"]) == 2
    assert "records 0 epochs but the run's recipe has 1" in capsys.readouterr().err
    assert _zoo_bytes(root) == before


def _writable_format():
    import keras

    from keras_er.deploy.support import refusal

    return next(f for f in ("onnx", "tf_saved_model") if refusal(f, keras.backend.backend()) is None)


def test_export_model_writes_a_verified_file(tmp_path, capsys, monkeypatch):
    from tests.deploy.test_export import sparse_cnn

    format = _writable_format()
    monkeypatch.setattr(cli, "_deployable_model", lambda source: sparse_cnn())
    out = tmp_path / ("model.onnx" if format == "onnx" else "saved")
    assert cli.main(["export-model", "some_id", "--format", format, "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["path"] == str(out) and report["max_abs_diff"] < 1e-4 and out.exists()
    assert cli.main(["export-model", "some_id", "--format", format, "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert cli.main(["export-model", "some_id", "--format", format, "--out", str(out), "--overwrite"]) == 0


def test_export_model_refuses_an_unknown_format_and_zoo_id(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["export-model", "x", "--format", "tflite", "--out", str(tmp_path / "m.tflite")])
    assert "invalid choice: 'tflite'" in capsys.readouterr().err
    format = _writable_format()  # a format this backend writes: no switch to another process
    assert cli.main(["export-model", "no_such_id", "--format", format, "--out", str(tmp_path / "out")]) == 2
    assert "No zoo entry 'no_such_id'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_export_model_of_a_run_takes_raw_pixels(tiny_cifar, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main([*TRAIN, "--out", str(run)]) == 0
    format = _writable_format()
    out = tmp_path / ("run.onnx" if format == "onnx" else "saved")
    capsys.readouterr()
    assert cli.main(["export-model", str(run), "--format", format, "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["max_abs_diff"] < 1e-4
    from keras_er.app.runs import load_run
    from keras_er.data import load
    from keras_er.data import load_arrays
    from keras_er.deploy import adapters

    raw, _ = load_arrays("cifar10", "test")
    normalised, _ = load("cifar10", "test", as_numpy=True, limit=4)
    (logits,) = adapters.RUNTIMES[format](out, raw[:4].astype("float32"))
    np.testing.assert_allclose(logits, np.asarray(load_run(run)[1].predict(normalised, verbose=0)), atol=1e-4)


@pytest.mark.slow
def test_export_model_switches_to_tensorflow_for_litert(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "KERAS_BACKEND": "torch"}
    out = tmp_path / "flagship.tflite"
    command = [sys.executable, "-m", "keras_er", "export-model", "resnet20_erk_d0.1_cifar10", "--format", "litert"]
    result = subprocess.run([*command, "--out", str(out)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["backend"] == "tensorflow" and report["bytes"] == out.stat().st_size <= 300 * 1024
    assert "litert is written on tensorflow" in result.stderr


def test_list_seeds_prints_the_seed_table(capsys):
    from keras_er.zoo import report

    assert cli.main(["list", "--seeds"]) == 0
    out = capsys.readouterr().out
    assert out == report.seed_table()
    assert "| `resnet20_erk_d0.1_cifar10` | erk | 0.1 | 0, 1" in out  # seed 0 and the _s1 entry, one row


@pytest.mark.parametrize("path", ["zoo.txt", "missing_folder/zoo.png"])
def test_list_refuses_a_figure_path_before_printing_anything(capsys, tmp_path, path):
    assert cli.main(["list", "--seeds", "--plot", str(tmp_path / path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "`--plot`" in err
    assert not (tmp_path / path).exists()


def test_list_plot_without_matplotlib_writes_nothing_and_prints_no_table(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # importing it raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert cli.main(["list", "--seeds", "--plot", str(tmp_path / "zoo.png")]) == 1
    out, err = capsys.readouterr()
    assert "matplotlib is not installed" in err and out == ""
    assert not (tmp_path / "zoo.png").exists()


def test_list_plot_of_a_zoo_with_nothing_to_draw_is_refused_before_printing(capsys, monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("KERAS_ER_ZOO_DIR", str(helpers.write_index(tmp_path, [])))
    assert cli.main(["list", "--markdown", "--plot", str(tmp_path / "zoo.png")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "nothing to plot" in err
    assert not (tmp_path / "zoo.png").exists()


def test_list_plot_expands_the_home_folder(capsys, monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cli.main(["list", "--plot", "~/zoo.png"]) == 0
    assert (tmp_path / "zoo.png").read_bytes()[:4] == b"\x89PNG"
    assert f"wrote {tmp_path / 'zoo.png'}" in capsys.readouterr().out
