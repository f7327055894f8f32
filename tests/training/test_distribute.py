"""Data-parallel training on two CPU devices equals one device, on each backend's own engine.

Each case runs `distributed_worker.py` in fresh processes (the device count is
fixed when a framework starts): JAX with two forced host devices, TensorFlow
with two logical CPUs under MirroredStrategy, torch as two gloo processes under
torchrun. The worker trains a masked ResNet20 for 4 steps alone and then
distributed, with the same global batch of 32.

Tolerances: float32 reductions in another order change the loss by about 1e-5
after 4 steps (measured: a 1e-7 relative change of the initial weights does the
same); doubling the learning rate, what a missing gradient average would do,
changes it by about 1e-2.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_er.training import distribute

pytestmark = pytest.mark.distributed
WORKER = Path(__file__).with_name("distributed_worker.py")
BACKEND = keras.backend.backend()
LOSS_ATOL = 1e-3
WEIGHT_ATOL = 5e-4


def run_worker(tmp_path, *options):
    out = tmp_path / "result.json"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    if BACKEND == "jax":
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    command = [sys.executable, str(WORKER), str(out), *options]
    if BACKEND == "torch":
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
        command = [sys.executable, *launcher, str(WORKER), str(out), *options]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def max_weight_difference(first, second):
    return max(np.abs(np.array(first["weights"][k]) - np.array(second["weights"][k])).max() for k in first["weights"])


def check_replicas_and_sparsity(result, popup=False):
    reference, distributed = result["reference"], result["distributed"]
    assert result["engine"]["devices"] == 2
    assert len(set(distributed["checksums"])) == 1  # every process holds the same masks
    assert distributed["mask_ones"] == reference["mask_ones"]  # exact per-layer counts
    assert distributed["nonzero"] == reference["nonzero"]  # the forward pass uses exactly those (popup: k)
    if not popup:
        assert distributed["stored_nonzero"] == distributed["mask_ones"]  # masked weights exactly zero


def test_two_devices_train_like_one(tmp_path):
    result = run_worker(tmp_path)
    reference, distributed = result["reference"], result["distributed"]
    expected = {"jax": "DataParallel", "tensorflow": "MirroredStrategy", "torch": "DDP"}[BACKEND]
    assert expected in result["engine"]["engine"]
    np.testing.assert_allclose(distributed["losses"], reference["losses"], atol=LOSS_ATOL)
    assert max_weight_difference(reference, distributed) < WEIGHT_ATOL
    assert distributed["checksums"][0] == reference["checksums"][0]  # static masks: the seed's, untouched
    check_replicas_and_sparsity(result)


@pytest.mark.slow  # two more fresh-process trainings per backend; CI keeps the plain and resumed ones
def test_popup_scores_and_frozen_kernels_stay_identical_across_replicas(tmp_path):
    result = run_worker(tmp_path, "--popup")
    np.testing.assert_allclose(result["distributed"]["losses"], result["reference"]["losses"], atol=LOSS_ATOL)
    check_replicas_and_sparsity(result, popup=True)


@pytest.mark.slow  # two more fresh-process trainings per backend; CI keeps the plain and resumed ones
def test_rigl_moves_every_replicas_masks_identically(tmp_path):
    result = run_worker(tmp_path, "--dst", "rigl")
    distributed = result["distributed"]
    assert distributed["checksums"][0] != distributed["initial_checksum"]  # the masks moved
    check_replicas_and_sparsity(result)


def test_a_distributed_run_resumes_from_its_backup(tmp_path):
    result = run_worker(tmp_path, "--run-dir", str(tmp_path / "run"))
    reference, distributed = result["reference"], result["distributed"]
    assert len(distributed["losses"]) == 2  # only the resumed epoch trained in the second fit
    np.testing.assert_allclose(distributed["losses"], reference["losses"][2:], atol=LOSS_ATOL)
    assert max_weight_difference(reference, distributed) < WEIGHT_ATOL
    assert (tmp_path / "run" / "log.csv").read_text().count("\n") == 3  # header + 2 epochs, one writer
    check_replicas_and_sparsity(result)


@pytest.mark.skipif(BACKEND != "jax", reason="ModelParallel is keras.distribution's (JAX)")
@pytest.mark.parametrize("popup", [False, True], ids=["masked", "popup"])
def test_jax_model_parallel_shards_kernels_and_masks_and_keeps_top_k_exact(tmp_path, popup):
    result = run_worker(tmp_path, "--model-parallel", *(["--popup"] if popup else []))
    assert result["engine"]["engine"] == "keras.distribution.ModelParallel"
    sharded = result["distributed"]["sharded"]
    assert any(path.endswith("/kernel") for path in sharded) and any(path.endswith("/mask") for path in sharded)
    np.testing.assert_allclose(result["distributed"]["losses"], result["reference"]["losses"], atol=LOSS_ATOL)
    check_replicas_and_sparsity(result, popup=popup)


@pytest.mark.skipif(BACKEND != "jax", reason="jax.distributed (keras.distribution.initialize)")
def test_jax_two_processes_joined_by_jax_distributed_train_like_one(tmp_path):
    import socket

    with socket.socket() as probe:  # a free port for the coordinator
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    # What keras.distribution.initialize() reads; data_parallel() joins through it (distribute.join_jax_hosts).
    env.update(XLA_FLAGS="", KERAS_DISTRIBUTION_JOB_ADDRESSES=f"localhost:{port}", KERAS_DISTRIBUTION_NUM_PROCESSES="2")
    out = tmp_path / "result.json"
    processes = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(out)],
            env={**env, "KERAS_DISTRIBUTION_PROCESS_ID": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    logs = [process.communicate(timeout=900)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes), logs[0][-3000:] + logs[1][-3000:]
    result = json.loads(out.read_text())
    assert result["engine"] == {"engine": "keras.distribution.DataParallel", "devices": 2, "processes": 2}
    np.testing.assert_allclose(result["distributed"]["losses"], result["reference"]["losses"], atol=LOSS_ATOL)
    assert max_weight_difference(result["reference"], result["distributed"]) < WEIGHT_ATOL
    check_replicas_and_sparsity(result)


def test_one_device_engine_changes_nothing():
    engine = distribute.data_parallel(1)
    assert engine.devices == 1 and engine.is_chief
    batches = [(np.zeros((4, 2)), np.arange(4))]
    assert engine.shard(batches) is batches


def test_bad_device_counts_are_refused():
    with pytest.raises(ValueError, match="`devices` must be a positive integer"):
        distribute.data_parallel(0)
    with pytest.raises(ValueError, match="`devices` must be a positive integer"):
        distribute.data_parallel(True)
    if BACKEND == "jax":
        with pytest.raises(ValueError, match="only 1 JAX devices"):
            distribute.data_parallel(64)
    if BACKEND == "torch":
        with pytest.raises(ValueError, match="torchrun"):
            distribute.data_parallel(2)


def test_sharded_batches_split_each_global_batch_in_rank_order():
    class Batches:
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return np.arange(8)[:, None] + 10 * index, np.arange(8)

    parts = [distribute.ShardedBatches(Batches(), rank, 2) for rank in range(2)]
    x0, y0 = parts[0][1]
    x1, y1 = parts[1][1]
    np.testing.assert_array_equal(np.concatenate([x0, x1]), Batches()[1][0])
    np.testing.assert_array_equal(y1, [4, 5, 6, 7])
    with pytest.raises(ValueError, match="cannot split evenly"):
        distribute.ShardedBatches(Batches(), 0, 3)[0]


def test_an_uneven_last_batch_is_refused_before_training():
    class Batches:
        def __len__(self):
            return 2

        def __getitem__(self, index):
            size = 8 if index == 0 else 6  # 6 images do not split over 4 processes
            return np.zeros((size, 2)), np.arange(size)

    with pytest.raises(ValueError, match="Batch 1 has 6 images, which 4 processes cannot split evenly"):
        distribute.ShardedBatches(Batches(), 0, 4)


def test_training_metrics_are_averaged_over_processes_before_they_are_logged():
    class TwoRanks(distribute.Engine):
        def average(self, value):  # the other rank saw 1.0
            return (value + 1.0) / 2

    logs = {"loss": 3.0, "accuracy": 0.5, "val_loss": 7.0, "epoch_seconds": 9.0}
    distribute.AveragedLogs(TwoRanks()).on_epoch_end(0, logs)
    assert logs == {"loss": 2.0, "accuracy": 0.75, "val_loss": 7.0, "epoch_seconds": 9.0}


class _Batches:
    """Two batches of 8 and 7 images: 7 does not split over 2 devices."""

    def __len__(self):
        return 2

    def __getitem__(self, index):
        size = 8 if index == 0 else 7
        return np.zeros((size, 2)), np.arange(size)


def test_check_even_batches_names_the_batch_and_the_count():
    distribute.check_even_batches(_Batches(), 1, "devices")  # one device: anything goes
    with pytest.raises(ValueError, match="Batch 1 has 7 images, which 2 devices cannot split evenly"):
        distribute.check_even_batches(_Batches(), 2, "devices")


def test_jax_data_parallel_refuses_an_uneven_last_batch_before_training():
    """On JAX one process feeds every device: an uneven last batch stopped the epoch with IndivisibleError."""
    script = (
        "import numpy as np, pytest\n"
        "from keras_er.training import distribute\n"
        "from tests.training.test_distribute import _Batches\n"
        "engine = distribute.data_parallel(2)\n"
        "with pytest.raises(ValueError, match='Batch 1 has 7 images, which 2 devices cannot split evenly'):\n"
        "    engine.shard(_Batches())\n"
        "print('refused')\n"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root, "KERAS_BACKEND": "jax"}
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "refused" in done.stdout, done.stderr[-3000:]


def test_the_keras_internals_the_torch_engine_replaces_are_as_it_expects():
    """torch_engine swaps BatchNorm's `_moments` and wraps `optimizer.apply`: fails if Keras changes them."""
    import inspect

    layer = keras.layers.BatchNormalization()
    layer.build((None, 4, 4, 3))
    assert list(layer._reduction_axes) == [0, 1, 2]
    assert list(inspect.signature(layer._moments).parameters) == ["inputs", "mask"]
    assert "self._moments(inputs, mask)" in inspect.getsource(keras.layers.BatchNormalization.call)
    assert list(inspect.signature(keras.optimizers.SGD().apply).parameters) == ["grads", "trainable_variables"]
