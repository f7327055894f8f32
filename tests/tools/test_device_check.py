"""tools/device_check: its CPU mode end to end, and a report that fails when a check fails."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from keras_er import data
from tools import device_check

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # about 75 s per backend: the whole device check on a CPU
def test_cpu_mode_runs_every_check_and_matches_the_prepared_predictions(tmp_path):
    try:
        data.load_arrays("cifar10", "test")
    except data.DatasetNotFoundError as error:
        pytest.skip(f"CIFAR-10 not available offline: {error}")
    backend = keras.backend.backend()
    env = {**os.environ, "PYTHON": sys.executable}
    prepared = tmp_path / "device"
    # The expected predictions come from torch (the fastest here): the check on
    # this backend must reproduce them image for image.
    subprocess.run(
        [sys.executable, "-m", "tools.device_check", "prepare", "--dir", str(prepared), "--images", "40"],
        cwd=REPO,
        env={**env, "KERAS_BACKEND": "torch"},
        check=True,
        capture_output=True,
    )
    out = tmp_path / "out"
    env.update(
        DEVICE_CHECK_CPU="1",
        DEVICE_CHECK_BACKENDS=backend,
        DEVICE_CHECK_DATA=str(prepared),
        DEVICE_CHECK_IMAGES="40",
        OUT=str(out),
    )
    process = subprocess.run(["bash", "tools/device_check.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    summary = json.loads((out / "device_check.json").read_text())
    assert summary["failures"] == []
    result = summary["backends"][backend]
    assert result["device"]["backend"] == backend and "finished" in result
    assert all(row["ok"] for row in result["logits"].values())
    assert len(result["logits"]) == len([e for e in device_check.zoo_entries() if e["arch"] == "resnet20"])
    for row in result["accuracy"].values():  # compared with the prepare step's predictions
        assert row["images"] == 40 and row["predictions_differing_from_cpu"] == 0
    assert result["tests"]["passed"] > 0 and result["tests"]["ok"]
    assert {(row["arch"], row["precision"]) for row in result["speed"]} == {
        ("resnet20", "float32"),
        ("resnet20", "mixed_bfloat16"),
    }
    assert "| zoo logits vs stored" in (out / "device_check.md").read_text()


def _result(logit_ok=True, logits=((0.0, 1.0),), finished=True, tests_ok=True):
    result = {
        "device": {"backend": "torch", "on_gpu": True},
        "logits": {
            "e": {
                "logits": [list(logits[0])],
                "ok": logit_ok,
                "max_diff_full_float32": 0.0,
                "max_diff_default_precision": 0.0,
            }
        },
        "accuracy": {"e": {"images": 10, "top1": 0.5, "predictions_differing_from_cpu": 0, "ok": True}},
        "tests": {"ok": tests_ok, "exit_code": 0 if tests_ok else 1},
        "speed": [],
    }
    if finished:
        result["finished"] = "now"
    return result


@pytest.mark.parametrize(
    "runs, failure",
    [
        ({"torch": _result(logit_ok=False)}, "torch: logits of e"),
        ({"torch": _result(finished=False)}, "torch: did not finish"),
        ({"torch": _result(tests_ok=False)}, "torch: dataset-free tests"),
        ({"torch": _result(), "jax": _result(logits=((0.0, 1.1),))}, "cross-backend"),
        ({}, "no backend reported"),
    ],
)
def test_report_fails_when_a_check_fails(tmp_path, runs, failure):
    for name, result in runs.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(result))
    assert device_check.report(type("Args", (), {"folder": str(tmp_path)})) == 1
    failures = json.loads((tmp_path / "device_check.json").read_text())["failures"]
    assert any(failure in line for line in failures), failures


def test_report_fails_when_an_expected_backend_wrote_nothing(tmp_path):
    (tmp_path / "torch.json").write_text(json.dumps(_result()))
    args = type("Args", (), {"folder": str(tmp_path), "expect": ["torch", "jax"]})
    assert device_check.report(args) == 1
    failures = json.loads((tmp_path / "device_check.json").read_text())["failures"]
    assert any(line.startswith("jax: wrote no result") for line in failures), failures


def test_report_passes_when_every_check_passes(tmp_path):
    for name in ("torch", "jax"):
        (tmp_path / f"{name}.json").write_text(json.dumps(_result()))
    assert device_check.report(type("Args", (), {"folder": str(tmp_path)})) == 0
