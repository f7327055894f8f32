"""tools/zoo_pages.py: the docs' generated tables match the zoo index, and rewriting them touches nothing else."""

import re

import pytest

from keras_er.zoo import report
from tests.helpers import index_entry
from tests.helpers import write_index
from tools import zoo_pages


def test_every_generated_table_of_the_docs_matches_the_index():
    assert zoo_pages.stale() == [], "run `python tools/zoo_pages.py` and commit the pages it rewrites"


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    entries = [index_entry("resnet20", "erk", 0.1, seed, top1) for seed, top1 in [(0, 0.80), (1, 0.82)]]
    return write_index(tmp_path_factory.mktemp("zoo"), entries)


def pages(folder, tables="old\n"):
    (folder / "docs" / "guides").mkdir(parents=True)
    for page in {page for page, _, _ in zoo_pages.TABLES}:
        markers = [marker for table_page, marker, _ in zoo_pages.TABLES if table_page == page]
        text = "".join(f"text before {m}\n<!-- {m} -->\n{tables}<!-- /{m} -->\ntext after {m}\n" for m in markers)
        (folder / page).write_text(text)


def test_update_rewrites_only_between_the_markers(tiny_zoo, tmp_path):
    pages(tmp_path)
    assert len(zoo_pages.stale(tmp_path, root=tiny_zoo)) == len(zoo_pages.TABLES)
    written = zoo_pages.update(tmp_path, root=tiny_zoo, figure=False)
    assert sorted(written) == sorted({page for page, _, _ in zoo_pages.TABLES})
    assert zoo_pages.stale(tmp_path, root=tiny_zoo) == []
    results = (tmp_path / "docs/results.md").read_text()
    assert "| `resnet20_erk_d0.1_cifar10` | erk | 0.1 | 0, 1 | 80.00 / 82.00 | 81.00 ± 1.41 |" in results
    assert "| erk | 81.00 ± 1.41 (n=2) |" in results
    assert results.startswith("text before scheme-density-table\n") and results.endswith("text after method-table\n")
    assert zoo_pages.update(tmp_path, root=tiny_zoo, figure=False) == []  # nothing stale: nothing written


def test_a_page_without_its_markers_is_refused_before_any_page_is_written(tiny_zoo, tmp_path):
    pages(tmp_path)
    before = {page: (tmp_path / page).read_text() for page, _, _ in zoo_pages.TABLES}
    broken = tmp_path / "docs/results.md"
    broken.write_text("no markers here\n")
    before["docs/results.md"] = "no markers here\n"
    with pytest.raises(ValueError, match="docs/results.md needs one <!-- scheme-density-table -->.*found 0 and 0"):
        zoo_pages.update(tmp_path, root=tiny_zoo, figure=False)
    assert {page: (tmp_path / page).read_text() for page in before} == before  # README and the zoo guide too


def test_markers_in_the_wrong_order_are_refused():
    with pytest.raises(ValueError, match="in the wrong order"):
        zoo_pages.split_at_marker("<!-- /seed-table -->\n<!-- seed-table -->\n", "seed-table")


def test_check_exits_1_and_names_the_stale_tables(capsys, monkeypatch, tiny_zoo, tmp_path):
    pages(tmp_path)
    monkeypatch.setattr(zoo_pages, "CHECKOUT", tmp_path)
    monkeypatch.setenv("KERAS_ER_ZOO_DIR", str(tiny_zoo))
    assert zoo_pages.main(["--check"]) == 1
    assert "stale: docs/results.md <!-- seed-table -->" in capsys.readouterr().out


PROSE = ["README.md", "docs/results.md", "docs/index.md"]
QUOTED = re.compile(r"(\d+\.\d\d)(?: ± (\d+\.\d\d))?%")


def test_every_accuracy_the_results_quote_is_a_zoo_number():
    """A top-1 written as `84.18%` is an entry's; `84.19 ± 0.02%` is a configuration's mean ± std over seeds."""
    summaries = report.seed_summaries()
    values = {f"{v:.2f}" for s in summaries for v in s.top1} | {f"{s.mean:.2f}" for s in summaries}
    spreads = {(f"{s.mean:.2f}", f"{s.std:.2f}") for s in summaries if s.std is not None}
    quoted = {page: QUOTED.findall((zoo_pages.CHECKOUT / page).read_text()) for page in PROSE}
    assert len(quoted["docs/results.md"]) > 10  # the pattern reads the pages' way of writing a top-1
    for page, found in quoted.items():
        for value, std in found:
            if std:
                assert (value, std) in spreads, f"{page}: {value} ± {std}% is no configuration's mean ± std"
            else:
                assert value in values, f"{page}: {value}% is no zoo entry's top-1 nor a mean over seeds"


def test_main_reports_a_page_without_its_markers_in_one_line_and_exits_2(capsys, monkeypatch, tiny_zoo, tmp_path):
    pages(tmp_path)
    (tmp_path / "docs/results.md").write_text("no markers here\n")
    monkeypatch.setattr(zoo_pages, "CHECKOUT", tmp_path)
    monkeypatch.setenv("KERAS_ER_ZOO_DIR", str(tiny_zoo))
    for argv in ([], ["--check"]):
        assert zoo_pages.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: docs/results.md needs one <!-- scheme-density-table -->")
        assert "Traceback" not in err
    assert (tmp_path / "docs/results.md").read_text() == "no markers here\n"


def test_a_zoo_with_no_resnet20_configuration_updates_the_tables_and_leaves_the_figure(tmp_path):
    pages(tmp_path)
    (tmp_path / "vgg_zoo").mkdir()
    vgg_only = write_index(tmp_path / "vgg_zoo", [index_entry("vgg16", "erk", 0.05, 0, 0.89)])
    written = zoo_pages.update(tmp_path, root=vgg_only)
    assert zoo_pages.FIGURE not in written and not (tmp_path / zoo_pages.FIGURE).exists()
    assert "vgg16_erk_d0.05_cifar10" in (tmp_path / "README.md").read_text()
