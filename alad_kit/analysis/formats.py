"""Writing a table of strings: GitHub Markdown, CSV and a standalone HTML page, each with an optional note
(and `percent`, the one way a share is printed in them).

Every table of `analysis` (results, compression, sweeps, claims) and the study are written through here,
so the three formats look alike everywhere; what a table says (and its note) is its own module's business.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from alad_kit.core.io import write_text_atomic


def percent(share: float) -> str:
    """A share as a whole percentage, "17%"; rounded to an int first so that a share just below zero reads
    "0%", not "-0%" (format's ``.0f`` keeps the sign of a negative zero)."""
    return f"{round(100 * share)}%"


def to_markdown(table: pd.DataFrame, note: str | None = None) -> str:
    """GitHub-flavoured markdown table (hand-written: no optional ``tabulate`` dependency)."""

    def cell(value) -> str:
        return "" if pd.isna(value) else str(value).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(cell(c) for c in table.columns) + " |",
        "|" + "|".join("---" for _ in table.columns) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def to_csv(table: pd.DataFrame) -> str:
    return table.to_csv(index=False)


def to_html(table: pd.DataFrame, note: str | None = None, title: str = "ALAd results") -> str:
    """Standalone HTML page with the table (escaped) and the units/spread note."""
    body = table.to_html(index=False, escape=True, border=0, classes="results")
    note_html = f"<p>{_escape(note)}</p>" if note else ""
    style = (
        "body{font-family:sans-serif;margin:2em} table.results{border-collapse:collapse}"
        " table.results th,table.results td{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}"
    )
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{_escape(title)}</title>"
        f"<style>{style}</style></head>\n<body><h1>{_escape(title)}</h1>\n{body}\n{note_html}</body></html>\n"
    )


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def write_formats(
    table: pd.DataFrame, out: Path, stem: str, note: str | None = None, title: str = "ALAd results"
) -> dict[str, Path]:
    """``out/stem.md``, ``.csv`` and ``.html`` of ``table``, each written atomically."""
    return {
        "md": write_text_atomic(out / f"{stem}.md", to_markdown(table, note)),
        "csv": write_text_atomic(out / f"{stem}.csv", to_csv(table)),
        "html": write_text_atomic(out / f"{stem}.html", to_html(table, note, title=title)),
    }
