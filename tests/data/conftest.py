import pytest

from keras_er.data import sources


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """Only the sources a test sets up can answer, and nothing reaches the network.

    No tfds data, no Debian Fashion-MNIST, $KERAS_ER_DATA in tmp_path/data (empty),
    $KERAS_HOME in tmp_path/keras (so the Keras cache is tmp_path/keras/datasets),
    and downloads pointed at tmp_path/mirror, a folder that does not exist
    unless the test makes it.
    """
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("KERAS_ER_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("KERAS_ER_DOWNLOAD_BASE", str(tmp_path / "mirror"))
    monkeypatch.setattr(sources, "_from_tfds", lambda *a: a[-1].append("tfds (off)"))
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    return tmp_path
