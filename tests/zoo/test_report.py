import pytest

from keras_er import zoo
from keras_er.zoo import report
from tests.helpers import index_entry
from tests.helpers import write_index


@pytest.fixture(scope="module")
def small_zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    for scheme, density in [("erk", 0.1), ("erk", 0.05), ("uniform", 0.1), ("dense", None)]:
        model = zoo.build("resnet20", scheme, density or 1.0, pretrained=None, seed=1)
        zoo.export(model, "resnet20", scheme, density, top1={"jax": 0.5, "torch": 0.5}, train_seconds=600.0, root=root)
    popup = zoo.build("resnet20", "erk", 0.5, pretrained=None, popup=True, popup_density=0.2)
    zoo.export(popup, "resnet20", "erk", 0.5, popup=True, popup_density=0.2, root=root)
    return root


@pytest.fixture(scope="module")
def seeded_zoo(tmp_path_factory):
    """ERK 0.1 with seeds 2, 0 and 1 (in that order in the index), uniform 0.1 with seed 0 only."""
    runs = [("erk", 2, 0.83), ("erk", 0, 0.80), ("uniform", 0, 0.7), ("erk", 1, 0.81)]
    entries = [index_entry("resnet20", scheme, 0.1, seed, top1) for scheme, seed, top1 in runs]
    return write_index(tmp_path_factory.mktemp("seeded_zoo"), entries)


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
    assert {"erk", "uniform"} <= set(figure.axes[0].get_legend_handles_labels()[1])
    assert matplotlib.get_backend() == backend  # a notebook's inline backend survives


def test_seeds_of_one_configuration_are_summarised_together(seeded_zoo):
    summaries = {s.configuration: s for s in report.seed_summaries(seeded_zoo)}
    assert set(summaries) == {"resnet20_erk_d0.1_cifar10", "resnet20_uniform_d0.1_cifar10"}
    erk = summaries["resnet20_erk_d0.1_cifar10"]
    assert erk.seeds == (0, 1, 2)
    assert erk.top1 == pytest.approx((80.0, 81.0, 83.0))
    assert erk.mean == pytest.approx(81.333333)
    assert erk.std == pytest.approx(1.527525)  # sample standard deviation (n - 1)
    assert erk.text() == "81.33 ± 1.53"
    uniform = summaries["resnet20_uniform_d0.1_cifar10"]
    assert uniform.std is None and uniform.text() == "70.00"


def test_configuration_id_is_the_seed_zero_id(seeded_zoo):
    from keras_er.zoo import registry

    ids = {e["id"]: report.configuration_id(e) for e in registry.load_index(seeded_zoo)}
    assert ids["resnet20_erk_d0.1_cifar10_s2"] == "resnet20_erk_d0.1_cifar10"
    assert ids["resnet20_uniform_d0.1_cifar10"] == "resnet20_uniform_d0.1_cifar10"


def test_seed_table_has_a_row_per_configuration(seeded_zoo):
    lines = report.seed_table(seeded_zoo).splitlines()
    assert len(lines) == 2 + 2
    erk = next(l for l in lines if "`resnet20_erk_d0.1_cifar10`" in l)
    cells = [c.strip() for c in erk.strip("|").split("|")]
    assert cells[1:] == ["erk", "0.1", "0, 1, 2", "80.00 / 81.00 / 83.00", "81.33 ± 1.53"]


def test_plot_draws_the_mean_with_one_std_error_bars(seeded_zoo, tmp_path):
    pytest.importorskip("matplotlib")
    from keras_er.app import plotting

    figure = plotting.accuracy_vs_density(tmp_path / "zoo.png", root=seeded_zoo)
    handles, labels = figure.axes[0].get_legend_handles_labels()
    erk = handles[labels.index("erk")]
    assert erk.lines[0].get_ydata() == pytest.approx([81.333333])
    (bars,) = erk.lines[2]
    low, high = bars.get_segments()[0][:, 1]
    assert (low, high) == pytest.approx((81.333333 - 1.527525, 81.333333 + 1.527525))


RIGL = {"method": "rigl", "update_every": 100, "drop_fraction": 0.3, "end_fraction": 0.75}
SNIP = {"method": "snip", "scope": "global"}


@pytest.fixture(scope="module")
def mixed_zoo(tmp_path_factory):
    """Every kind of entry the report groups: seeds, a recipe variant at the same density, DST, pruning, popup,
    another architecture."""
    entries = [
        index_entry("resnet20", "erk", 0.1, 0, 0.80),
        index_entry("resnet20", "erk", 0.1, 1, 0.82),
        index_entry("resnet20", "erk", 0.1, 0, 0.50, variant="e1"),
        index_entry("resnet20", "erk", 0.1, 0, 0.84, dst=RIGL),
        index_entry("resnet20", "erk", 0.1, 1, 0.85, dst=RIGL),
        index_entry("resnet20", "erk", 0.1, 0, 0.83, prune=SNIP),
        index_entry("resnet20", "erk", 0.5, 0, 0.74, popup=True, popup_density=0.2),
        index_entry("resnet20", "uniform", 0.02, 0, 0.49),
        index_entry("resnet20", "dense", 1.0, 0, 0.88),
        index_entry("resnet20", "dense", 1.0, 2, 0.89),
        index_entry("vgg16", "erk", 0.05, 0, 0.89),
    ]
    return write_index(tmp_path_factory.mktemp("mixed_zoo"), entries)


def test_configuration_id_keeps_everything_but_the_seed(mixed_zoo):
    from keras_er.zoo import registry

    configurations = [report.configuration_id(e) for e in registry.load_index(mixed_zoo)]
    assert configurations == [
        "resnet20_erk_d0.1_cifar10",
        "resnet20_erk_d0.1_cifar10",
        "resnet20_erk_d0.1_cifar10_e1",
        "resnet20_erk_d0.1_rigl_cifar10",
        "resnet20_erk_d0.1_rigl_cifar10",
        "resnet20_erk_d0.1_snip-global_cifar10",
        "resnet20_erk_d0.5_popup0.2_cifar10",
        "resnet20_uniform_d0.02_cifar10",
        "resnet20_dense_cifar10",
        "resnet20_dense_cifar10",
        "vgg16_erk_d0.05_cifar10",
    ]
    assert len(report.seed_summaries(mixed_zoo)) == 8
    assert len(report.seed_summaries(mixed_zoo, arch="resnet20", variants=False)) == 6


def test_scheme_density_table_holds_dense_and_the_static_er_draws_only(mixed_zoo):
    assert report.scheme_density_table(root=mixed_zoo) == (
        "| resnet20, cifar10 | density 1 | density 0.1 | density 0.02 |\n"
        "| --- | ---: | ---: | ---: |\n"
        "| dense | 88.50 ± 0.71 (n=2) |  |  |\n"
        "| uniform |  |  | 49.00 (n=1) |\n"
        "| erk |  | 81.00 ± 1.41 (n=2) |  |\n"
    )  # the e1 variant, RigL, SNIP and popup are other configurations
    assert report.scheme_density_table("vgg16", root=mixed_zoo).splitlines()[2] == "| erk | 89.00 (n=1) |"
    assert report.scheme_density_table("resnet56", root=mixed_zoo) == ""


def test_method_table_compares_the_ways_to_start_sparse_at_one_density(mixed_zoo):
    assert report.method_table(root=mixed_zoo) == (
        "| start | masks | top-1 % | n |\n"
        "| --- | --- | ---: | ---: |\n"
        "| random ER, before training | erk, static | 81.00 ± 1.41 | 2 |\n"
        "| pruning at initialisation | snip (global), static | 83.00 | 1 |\n"
        "| random ER, dynamic | rigl from the erk mask (update every 100 steps, drop 30% decaying to 0 by 75% of"
        " training) | 84.50 ± 0.71 | 2 |\n"
        "| dense | — | 88.50 ± 0.71 | 2 |\n"
    )  # the e1 variant and popup (whose final density is also 0.1) are not in it; uniform is at 0.02
    assert "| uniform, static | 49.00 | 1 |" in report.method_table(density=0.02, root=mixed_zoo)
    assert report.method_table("resnet56", root=mixed_zoo) == ""


def test_plot_keeps_variants_off_and_marks_moved_masks_with_their_spread(mixed_zoo, tmp_path):
    pytest.importorskip("matplotlib")
    from keras_er.app import plotting

    figure = plotting.accuracy_vs_density(tmp_path / "zoo.png", root=mixed_zoo)
    handles, labels = figure.axes[0].get_legend_handles_labels()
    assert labels == ["dense", "uniform", "erk", "rigl (DST)", "snip (pruned at init)", "popup (weights untrained)"]
    erk = handles[labels.index("erk")]
    assert list(erk.lines[0].get_xdata()) == [0.1]  # one point: the e1 variant is not on the line
    assert erk.lines[0].get_ydata() == pytest.approx([81.0])
    rigl = handles[labels.index("rigl (DST)")]
    (bars,) = rigl.lines[2]
    assert bars.get_segments()[0][:, 1] == pytest.approx([84.5 - 0.707107, 84.5 + 0.707107])
    assert [tick.get_text() for tick in figure.axes[0].get_xticklabels()] == ["0.02", "0.1"]


def test_a_backend_recorded_without_a_measurement_is_left_out_of_the_mean(tmp_path):
    half_measured = index_entry("resnet20", "erk", 0.1, 0, 0.84)
    half_measured["top1"] = {"tensorflow": 0.84, "torch": None}
    unmeasured = index_entry("resnet20", "uniform", 0.1, 0, None)
    (summary,) = report.seed_summaries(write_index(tmp_path, [half_measured, unmeasured]))
    assert summary.configuration == "resnet20_erk_d0.1_cifar10" and summary.top1 == pytest.approx((84.0,))


def test_an_entry_recording_its_seed_as_null_is_seed_0(tmp_path):
    entry = index_entry("resnet20", "erk", 0.1, 0, 0.80)
    entry["seed"] = None
    (summary,) = report.seed_summaries(write_index(tmp_path, [entry, index_entry("resnet20", "erk", 0.1, 1, 0.82)]))
    assert summary.seeds == (0, 1)


def test_the_legend_names_each_method_once_however_many_configurations_use_it(tmp_path):
    pytest.importorskip("matplotlib")
    from keras_er.app import plotting

    entries = [
        index_entry("resnet20", "erk", 0.5, 0, 0.74, popup=True, popup_density=0.2),
        index_entry("resnet20", "erk", 0.5, 0, 0.70, popup=True, popup_density=0.1),
        index_entry("resnet20", "erk", 0.1, 0, 0.84, dst=RIGL),
        index_entry("resnet20", "erk", 0.05, 0, 0.80, dst=RIGL),
    ]
    figure = plotting.accuracy_vs_density(tmp_path / "zoo.png", root=write_index(tmp_path, entries))
    _, labels = figure.axes[0].get_legend_handles_labels()
    assert labels == ["popup (weights untrained)", "rigl (DST)"]  # in the index's order


def test_an_unknown_architecture_is_refused_and_an_empty_plot_is_not_drawn(seeded_zoo, tmp_path):
    from keras_er.app import plotting

    with pytest.raises(ValueError, match="Unknown `arch` 'resnet21'; expected one of .*resnet20"):
        report.scheme_density_table("resnet21", root=seeded_zoo)
    with pytest.raises(ValueError, match="no vgg16 entry on cifar10 with a measured top-1: nothing to plot"):
        plotting.accuracy_vs_density(tmp_path / "zoo.png", arch="vgg16", root=seeded_zoo)
    assert not (tmp_path / "zoo.png").exists()
