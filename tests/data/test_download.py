"""Download on first use, against tiny fake archives served from tmp_path (no network).

The fakes have the layout of the real files Keras downloads; each test swaps
only the file hash in the built-in spec for the fake's (computed here), so the
URL file name, cache name, extraction and reader under test are the real ones.
"""

import contextlib
import dataclasses
import gzip
import hashlib
import http.server
import io
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import threading
import time

import keras
import numpy as np
import pytest

from keras_er import data
from keras_er.data import DATASET_SPECS
from keras_er.data import DatasetDownloadError
from keras_er.data import DatasetNotFoundError
from keras_er.data import DatasetSpec
from keras_er.data import DownloadSource
from keras_er.data import RemoteFile
from keras_er.data import download
from keras_er.data import load_arrays
from keras_er.data import register_dataset
from keras_er.data import unregister_dataset
from keras_er.files import scratch_path

CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def use_file_hash(monkeypatch, name, file_hash):
    """Give every file of `name`'s built-in download source `file_hash` (for this test only)."""
    spec = DATASET_SPECS[name]
    files = tuple(dataclasses.replace(f, file_hash=file_hash) for f in spec.download.files)
    download = dataclasses.replace(spec.download, files=files)
    monkeypatch.setitem(
        DATASET_SPECS._builtins,
        name,  # the built-in entry, for this test only
        dataclasses.replace(spec, download=download),
    )


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def make_cifar10_archive(path, seed=0):
    """A `cifar-10-python.tar.gz` laid out like the real one, with 5 x 4 train and 10 test images.

    Returns {split: (images NHWC, labels)} as the archive holds them.
    """
    rng = np.random.default_rng(seed)
    sizes = {**{f"data_batch_{i}": 4 for i in range(1, 6)}, "test_batch": 10}
    batches = {}
    with tarfile.open(path, "w:gz") as tar:
        for name, n in sizes.items():
            chw = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
            labels = rng.integers(0, 10, n).tolist()
            batch = {b"batch_label": name.encode(), b"data": chw.reshape(n, -1), b"labels": labels}
            payload = pickle.dumps(batch, protocol=2)  # the real batches are Python 2 pickles
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
            batches[name] = (chw.transpose(0, 2, 3, 1), labels)
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    return {
        "train": (np.concatenate([x for x, _ in train]), [label for _, y in train for label in y]),
        "test": batches["test_batch"],
    }


def make_mnist_npz(path):
    """An `mnist.npz` like Keras': x_* (N, 28, 28) uint8, y_* (N,) uint8."""
    x = np.arange(9 * 28 * 28, dtype=np.uint64).astype(np.uint8).reshape(9, 28, 28)
    y = np.arange(9, dtype=np.uint8)
    np.savez(path, x_train=x[:6], y_train=y[:6], x_test=x[6:], y_test=y[6:])
    return x, y


class _Mirror(http.server.SimpleHTTPRequestHandler):
    requests = None  # set per server

    def do_GET(self):
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_mirror(offline, monkeypatch):
    """A localhost HTTP server of tmp_path/mirror as $KERAS_ER_DOWNLOAD_BASE; yields (folder, requests)."""
    folder = offline / "mirror"
    folder.mkdir()
    requests = []
    handler = type("Handler", (_Mirror,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *args: handler(*args, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("KERAS_ER_DOWNLOAD_BASE", f"http://127.0.0.1:{server.server_port}/")
    yield folder, requests
    server.shutdown()
    server.server_close()
    thread.join()


class _Misbehaving(http.server.BaseHTTPRequestHandler):
    """Declares `len(body)` bytes, sends `body[:sent]`; `stall`: then waits ("body") or never answers ("headers")."""

    body, sent, stall, release = b"", 0, None, None

    def do_GET(self):
        if self.stall == "headers":
            self.release.wait(60)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body[: self.sent])
        self.wfile.flush()
        if self.stall == "body":
            self.release.wait(60)
        # returning closes the connection (HTTP/1.0): a truncated body

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def misbehaving_server(body, sent, stall=None):
    """A localhost server that truncates (`sent < len(body)`) or stalls (`stall`); yields its base URL.

    A stalled handler is released when the block ends, so code that would hang
    forever without a timeout ends then (and its test has failed already).
    """
    release = threading.Event()
    handler = type("Handler", (_Misbehaving,), {"body": body, "sent": sent, "stall": stall, "release": release})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join()


def call_with_deadline(call, seconds):
    """Run `call` in a thread; (its exception or result, seconds taken); fails the test if it is still running."""
    outcome = []
    start = time.monotonic()

    def target():
        try:
            outcome.append(call())
        except BaseException as error:  # noqa: BLE001 (handed to the test)
            outcome.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s: no timeout on the network read"
    return outcome[0], time.monotonic() - start


def dead_pid():
    """The id of a process of this host that has exited."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def scratch_left(home):
    return [p.name for p in home.rglob("*") if ".part-" in p.name or p.name.startswith(".keras_er-download")]


def test_cifar10_downloads_once_into_keras_home_in_keras_layout(http_mirror, offline, monkeypatch):
    folder, requests = http_mirror
    expected = make_cifar10_archive(folder / CIFAR10_ARCHIVE)
    use_file_hash(monkeypatch, "cifar10", sha256(folder / CIFAR10_ARCHIVE))

    images, labels = load_arrays("cifar10", "train")
    assert images.shape == (20, 32, 32, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.tolist() == expected["train"][1]
    np.testing.assert_array_equal(images, expected["train"][0])
    x, y = data.load("cifar10", "test", as_numpy=True)  # the other split, from the cache
    assert x.shape == (10, 32, 32, 3) and y.tolist() == expected["test"][1]
    assert requests == [f"/{CIFAR10_ARCHIVE}"]

    home = offline / "keras"
    assert [p.name for p in home.iterdir()] == ["datasets"]  # no scratch folder left
    cache = home / "datasets"
    assert (cache / "cifar-10-batches-py-target_archive").read_bytes() == (folder / CIFAR10_ARCHIVE).read_bytes()
    assert (cache / "cifar-10-batches-py-target" / "cifar-10-batches-py" / "test_batch").is_file()
    # Keras' own get_file, as keras.datasets.cifar10 calls it, finds the same cache entry.
    keras.utils.get_file(
        fname="cifar-10-batches-py-target",
        origin=f"http://127.0.0.1:1/{CIFAR10_ARCHIVE}",
        extract=True,
        file_hash=DATASET_SPECS["cifar10"].download.files[0].file_hash,
        cache_dir=str(home),
    )
    assert len(requests) == 1


def test_download_false_raises_not_found_and_says_download_true(http_mirror, monkeypatch):
    folder, requests = http_mirror
    make_cifar10_archive(folder / CIFAR10_ARCHIVE)
    use_file_hash(monkeypatch, "cifar10", sha256(folder / CIFAR10_ARCHIVE))
    for call in (
        lambda: load_arrays("cifar10", "test", download=False),
        lambda: data.load("cifar10", "test", download=False),
    ):
        with pytest.raises(DatasetNotFoundError) as info:
            call()
        assert not isinstance(info.value, DatasetDownloadError)
        assert "download=True" in str(info.value) and CIFAR10_ARCHIVE in str(info.value)
    assert requests == []


def test_a_hash_mismatch_names_the_url_and_leaves_nothing_in_the_cache(http_mirror, offline, monkeypatch):
    folder, requests = http_mirror
    make_cifar10_archive(folder / CIFAR10_ARCHIVE)
    use_file_hash(monkeypatch, "cifar10", "0" * 64)
    with pytest.raises(DatasetDownloadError, match="hash does not match") as info:
        load_arrays("cifar10", "test")
    assert f"/{CIFAR10_ARCHIVE}" in str(info.value) and "127.0.0.1" in str(info.value)
    assert files_under(offline / "keras") == []
    # With the right hash it downloads again and loads.
    use_file_hash(monkeypatch, "cifar10", sha256(folder / CIFAR10_ARCHIVE))
    assert load_arrays("cifar10", "test")[0].shape == (10, 32, 32, 3)
    assert len(requests) == 2


def test_an_unreachable_file_names_the_url_and_the_cause(offline):
    # The `offline` fixture points downloads at tmp_path/mirror, which does not exist.
    with pytest.raises(DatasetDownloadError) as info:
        load_arrays("mnist", "train")
    message = str(info.value)
    assert (offline / "mirror" / "mnist.npz").as_uri() in message and "No such file" in message
    assert isinstance(info.value, DatasetNotFoundError)  # callers that skip when offline still do
    assert files_under(offline / "keras") == []


def test_mnist_from_a_local_folder_mirror_then_from_the_cache_alone(offline, monkeypatch):
    mirror = offline / "mirror"
    mirror.mkdir()
    x, y = make_mnist_npz(mirror / "mnist.npz")
    use_file_hash(monkeypatch, "mnist", sha256(mirror / "mnist.npz"))
    images, labels = load_arrays("mnist", "train")
    assert images.shape == (6, 28, 28, 1) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[..., 0], x[:6])
    assert labels.dtype == np.int64 and labels.tolist() == y[:6].tolist()
    assert (offline / "keras" / "datasets" / "mnist.npz").is_file()
    (mirror / "mnist.npz").unlink()  # a second download would now fail
    assert load_arrays("mnist", "test")[1].tolist() == [6, 7, 8]


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.tobytes())


def test_a_multi_file_download_is_all_or_nothing(offline):
    mirror = offline / "mirror"
    mirror.mkdir()
    for prefix, n in (("train", 4), ("t10k", 2)):
        write_idx(mirror / f"{prefix}-images-idx3-ubyte.gz", np.full((n, 28, 28), n, np.uint8))
        write_idx(mirror / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8))
    missing = mirror / "t10k-images-idx3-ubyte.gz"
    kept = missing.read_bytes()
    missing.unlink()
    with pytest.raises(DatasetDownloadError, match="t10k-images-idx3-ubyte.gz"):
        load_arrays("fashion_mnist", "train")
    assert files_under(offline / "keras") == []  # the two train files were not kept either
    missing.write_bytes(kept)
    images, labels = load_arrays("fashion_mnist", "test")
    assert images.shape == (2, 28, 28, 1) and labels.tolist() == [0, 1]
    assert len(files_under(offline / "keras" / "datasets" / "fashion-mnist")) == 4


def test_a_registered_dataset_downloads_from_its_own_source(offline, monkeypatch):
    monkeypatch.delenv("KERAS_ER_DOWNLOAD_BASE")
    remote = offline / "remote"
    remote.mkdir()
    x = np.ones((5, 8, 8, 1), np.uint8)
    np.savez(remote / "tiny.npz", x_train=x, y_train=np.arange(5) % 3, x_test=x[:2], y_test=[2, 0])
    source = DownloadSource(
        (RemoteFile((remote / "tiny.npz").as_uri(), sha256(remote / "tiny.npz"), "tiny_remote.npz"),), "npz"
    )
    register_dataset(DatasetSpec("tiny_remote", (8, 8, 1), 3, (1.0,), (2.0,), download=source))
    try:
        images, labels = load_arrays("tiny_remote", "test")
        assert images.shape == (2, 8, 8, 1) and labels.tolist() == [2, 0]
        assert (offline / "keras" / "datasets" / "tiny_remote.npz").is_file()
    finally:
        unregister_dataset("tiny_remote")


def test_a_registered_dataset_without_a_download_source_says_where_to_put_it(offline):
    register_dataset(DatasetSpec("tiny_local", (8, 8, 1), 3, (1.0,), (2.0,)))
    try:
        with pytest.raises(DatasetNotFoundError, match=r"KERAS_ER_DATA/tiny_local.npz") as info:
            load_arrays("tiny_local", "test")
        assert not isinstance(info.value, DatasetDownloadError)
        assert "download=True" not in str(info.value)
    finally:
        unregister_dataset("tiny_local")


@pytest.mark.parametrize("stall", ["body", "headers"])
def test_a_server_that_stalls_fails_within_the_timeout_and_leaves_nothing(offline, monkeypatch, stall):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("KERAS_ER_DOWNLOAD_TIMEOUT", "1")
    with misbehaving_server(b"x" * 5000, 1000, stall=stall) as base:
        monkeypatch.setenv("KERAS_ER_DOWNLOAD_BASE", base)
        error, seconds = call_with_deadline(lambda: load_arrays("mnist", "train"), 20)
    assert isinstance(error, DatasetDownloadError), error
    assert seconds < 10
    message = str(error)
    if stall == "body":
        assert "no data for 1 s after 1000 of 5000 bytes" in message and "KERAS_ER_DOWNLOAD_TIMEOUT" in message
    else:
        assert "sent no answer within 1 s" in message
    assert "(failed)" in message and "unreachable" not in message  # the server was there: not "offline"
    assert files_under(offline / "keras") == [] and scratch_left(offline / "keras") == []


def test_a_truncated_download_names_both_byte_counts_and_leaves_nothing(offline, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    make_mnist_npz(offline / "mnist.npz")
    body = (offline / "mnist.npz").read_bytes()
    use_file_hash(monkeypatch, "mnist", sha256(offline / "mnist.npz"))
    with misbehaving_server(body, 400) as base:
        monkeypatch.setenv("KERAS_ER_DOWNLOAD_BASE", base)
        with pytest.raises(DatasetDownloadError) as info:
            load_arrays("mnist", "train")
    message = str(info.value)
    assert f"truncated: expected {len(body)} bytes (Content-Length), got 400" in message
    assert "(failed)" in message and "unreachable" not in message
    assert not info.value.__cause__.offline
    assert files_under(offline / "keras") == [] and scratch_left(offline / "keras") == []


def test_a_refused_connection_is_reported_as_unreachable(offline, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("KERAS_ER_DOWNLOAD_BASE", f"http://127.0.0.1:{port}/")
    with pytest.raises(DatasetDownloadError) as info:
        load_arrays("mnist", "train")
    assert "(unreachable)" in str(info.value) and "could not connect" in str(info.value)
    assert info.value.__cause__.offline


def test_a_killed_downloads_scratch_folder_is_removed_by_the_next_download(offline, monkeypatch):
    home = offline / "keras"
    home.mkdir()
    writer = scratch_path(home / ".keras_er-download").name.rsplit("-", 2)[0]  # .keras_er-download.part-<host>
    dead = home / f"{writer}-{dead_pid()}-0123abcd"
    (dead / "datasets").mkdir(parents=True)
    (dead / "datasets" / "mnist.npz").write_bytes(b"half")
    alive = home / f"{writer}-{os.getpid()}-0123abcd"  # another thread's, still running
    alive.mkdir()
    mirror = offline / "mirror"
    mirror.mkdir()
    make_mnist_npz(mirror / "mnist.npz")
    use_file_hash(monkeypatch, "mnist", sha256(mirror / "mnist.npz"))
    assert load_arrays("mnist", "test")[0].shape == (3, 28, 28, 1)
    assert not dead.exists() and alive.is_dir()
    assert files_under(home) == ["datasets/mnist.npz"]


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-1.0, ValueError), (float("inf"), ValueError), (float("nan"), ValueError), ("5", TypeError)],
)
def test_the_timeout_must_be_a_finite_positive_number(value, error):
    with pytest.raises(error, match="`timeout`"):
        download.download_timeout(value)
    assert download.download_timeout(2) == 2.0


def test_the_timeout_variable_is_read_and_checked(monkeypatch):
    monkeypatch.delenv("KERAS_ER_DOWNLOAD_TIMEOUT", raising=False)
    assert download.download_timeout() == download.DEFAULT_TIMEOUT == 60.0
    monkeypatch.setenv("KERAS_ER_DOWNLOAD_TIMEOUT", "2.5")
    assert download.download_timeout() == 2.5 and download.download_timeout(7) == 7.0
    for bad in ("0", "soon", "inf"):
        monkeypatch.setenv("KERAS_ER_DOWNLOAD_TIMEOUT", bad)
        with pytest.raises(ValueError, match=r"\$KERAS_ER_DOWNLOAD_TIMEOUT .*" + bad):
            download.download_timeout()
