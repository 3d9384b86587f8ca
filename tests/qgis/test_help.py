"""Help texts render as written: QGIS 3.22 makes a paragraph of every line of a help string."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

HELP = Path(__file__).resolve().parents[2] / "help"


def _words(text: str) -> list[str]:
    """The visible words of an HTML text (tags removed, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", text)).split()


@pytest.mark.parametrize("path", sorted(HELP.glob("*.html")), ids=lambda p: p.stem)
def test_help_has_no_line_breaks_inside_paragraphs_and_keeps_every_word(plugin_on_path, path):
    from territory_planner.processing_algorithms import base

    text = base.load_help(path.stem)
    source = path.read_text(encoding="utf-8")
    assert "\n" in source  # the source is wrapped for editing ...
    assert "\n" not in text  # ... what QGIS shows is not: one line, so no forced breaks
    body = source.split("<body>", 1)[-1].split("</body>", 1)[0]
    assert _words(text) == _words(body)
    assert text.count("<p>") == body.count("<p>")


def test_reflow_keeps_preformatted_lines(plugin_on_path):
    from territory_planner.processing_algorithms.base import reflow_html

    out = reflow_html("<p>one\n  two</p>\n<pre>a\n b</pre>\n<p>three\r\nfour</p>\n")
    assert out == "<p>one two</p> <pre>a\n b</pre> <p>three four</p>"


def test_every_algorithm_shows_its_help_on_one_line(territory_provider):
    """What QGIS 3.22's dialog splits into paragraphs at each newline is a single paragraph."""
    from territory_planner.processing_algorithms.base import TerritoryPlannerAlgorithm

    # the shipped model's help is written by QGIS itself, one block per line
    algs = [a for a in territory_provider.algorithms() if isinstance(a, TerritoryPlannerAlgorithm)]
    assert len(algs) >= 9
    for alg in algs:
        text = alg.shortHelpString()
        assert text, alg.id()
        assert len(text.split("\n")) == 1, alg.id()
