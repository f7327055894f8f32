import pytest

from keras_er import zoo
from keras_er.zoo import report


@pytest.fixture(scope="module")
def small_zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    for scheme, density in [("erk", 0.1), ("erk", 0.05), ("uniform", 0.1), ("dense", None)]:
        model = zoo.build("resnet20", scheme, density or 1.0, pretrained=None, seed=1)
        zoo.export(model, "resnet20", scheme, density, top1={"jax": 0.5, "torch": 0.5}, train_seconds=600.0, root=root)
    popup = zoo.build("resnet20", "erk", 0.5, pretrained=None, popup=True, popup_density=0.2)
    zoo.export(popup, "resnet20", "erk", 0.5, popup=True, popup_density=0.2, root=root)
    return root


def test_markdown_table_has_a_row_per_entry_with_counts(small_zoo):
    lines = report.markdown_table(small_zoo).splitlines()
    assert len(lines) == 2 + 5
    row = next(l for l in lines if "`resnet20_erk_d0.1_cifar10`" in l)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == ["erk", "0.1", "27,087 / 270,896"]
    assert cells[4:7] == ["—", "50.00", "50.00"]  # no TF measurement recorded
    assert cells[8] == "10 min"
    dense = next(l for l in lines if "dense" in l)
    assert "270,896 / 270,896" in dense
    popup = next(l for l in lines if "popup" in l)
    assert "erk + popup 0.2 | 0.1 |" in popup


def test_plot_is_written_without_touching_pyplot_state(small_zoo, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    from keras_er.app import plotting

    backend = matplotlib.get_backend()
    figure = plotting.accuracy_vs_density(tmp_path / "zoo.png", root=small_zoo)
    assert (tmp_path / "zoo.png").read_bytes()[:4] == b"\x89PNG"
    assert {"erk", "uniform"} <= {line.get_label() for line in figure.axes[0].get_lines()}
    assert matplotlib.get_backend() == backend  # a notebook's inline backend survives
