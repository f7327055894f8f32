"""The docs' tables and figure that are generated from the zoo index, rewritten in place.

    python tools/zoo_pages.py           # rewrite every table between its markers, redraw the figure
    python tools/zoo_pages.py --check   # name the stale tables (exit 1); writes nothing

A generated table sits between `<!-- NAME -->` and `<!-- /NAME -->` on its page;
everything outside the markers is left as it is. tests/tools/test_zoo_pages.py
fails while a table differs from what the index gives.
"""

import argparse
import sys
from pathlib import Path

from keras_er.files import write_text_atomic
from keras_er.zoo import report

CHECKOUT = Path(__file__).resolve().parents[1]
FIGURE = "docs/zoo_accuracy_vs_density.png"

# page, marker, what writes the table
TABLES = [
    ("README.md", "zoo-table", report.markdown_table),
    ("docs/guides/zoo.md", "zoo-table", report.markdown_table),
    ("README.md", "scheme-density-table", report.scheme_density_table),
    ("docs/results.md", "scheme-density-table", report.scheme_density_table),
    ("docs/results.md", "seed-table", report.seed_table),
    ("docs/results.md", "method-table", report.method_table),
]


def split_at_marker(text, marker, page="the page"):
    """(before, table, after) around the table between `<!-- marker -->` and `<!-- /marker -->`."""
    opening, closing = f"<!-- {marker} -->\n", f"<!-- /{marker} -->"
    counts = (text.count(opening), text.count(closing))
    if counts != (1, 1) or text.index(opening) > text.index(closing):
        found = "in the wrong order" if counts == (1, 1) else f"found {counts[0]} and {counts[1]}"
        raise ValueError(
            f"{page} needs one {opening.strip()} (a line of its own) and, after it, one {closing}; {found}."
        )
    before, rest = text.split(opening)
    table, after = rest.split(closing)
    return before + opening, table, closing + after


def stale(checkout=None, root=None):
    """The (page, marker) pairs whose table differs from the index's (`checkout`: the repository, default this one)."""
    found = []
    for page, marker, make in TABLES:
        _, table, _ = split_at_marker((Path(checkout or CHECKOUT) / page).read_text(), marker, page)
        if table != make(root=root):
            found.append((page, marker))
    return found


def update(checkout=None, root=None, figure=True):
    """Rewrite the stale tables (each page whole, atomically) and redraw the figure; return the files written.

    Every page's markers are checked before any page is written."""
    checkout = Path(checkout or CHECKOUT)
    written = []
    for page in dict.fromkeys(page for page, _ in stale(checkout, root)):
        path = checkout / page
        text = path.read_text()
        for table_page, marker, make in TABLES:
            if table_page == page:
                before, _, after = split_at_marker(text, marker, page)
                text = before + make(root=root) + after
        write_text_atomic(path, text)
        written.append(page)
    if figure and report.seed_summaries(root, arch="resnet20", dataset="cifar10", variants=False):
        from keras_er.app import plotting

        if plotting.accuracy_vs_density(checkout / FIGURE, root=root) is not None:
            written.append(FIGURE)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="name the stale tables and exit 1 if any; write nothing")
    args = parser.parse_args(argv)
    try:
        return _check() if args.check else _update()
    except ValueError as error:  # a page without its markers: nothing was written
        print(f"error: {error}", file=sys.stderr)
        return 2


def _check():
    found = stale()
    for page, marker in found:
        print(f"stale: {page} <!-- {marker} -->")
    return 1 if found else 0


def _update():
    for page in update():
        print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
