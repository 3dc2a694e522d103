"""Writing tables: Markdown, CSV, HTML (alad_kit.analysis.formats)."""

import pandas as pd

from alad_kit.analysis import formats


def test_to_markdown_escapes_and_has_one_line_per_row():
    t = pd.DataFrame({"Model": ["a|b", "c"], "Acc": ["1.00", ""]})
    md = formats.to_markdown(t, note=None).splitlines()
    assert md == ["| Model | Acc |", "|---|---|", "| a\\|b | 1.00 |", "| c |  |"]


def test_write_formats_writes_the_note_in_md_and_html(tmp_path):
    t = pd.DataFrame({"Model": ["a"], "Acc": ["1.00"]})
    paths = formats.write_formats(t, tmp_path, "t", note="a <note>", title="T")
    assert paths["md"].read_text().endswith("\na <note>\n")
    assert "<p>a &lt;note&gt;</p>" in paths["html"].read_text() and "<title>T</title>" in paths["html"].read_text()
    assert paths["csv"].read_text() == "Model,Acc\na,1.00\n"
    assert formats.write_formats(t, tmp_path, "plain")["md"].read_text().count("\n") == 3  # no note by default


def test_percent_rounds_and_never_prints_a_negative_zero():
    assert formats.percent(0.1749) == "17%"
    assert formats.percent(-0.004) == "0%"  # f"{-0.4:.0f}" would give "-0%"
    assert formats.percent(-0.11) == "-11%"
    assert formats.percent(0.55) == "55%"
