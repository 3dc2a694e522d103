"""Human labels for what figures and tables show, defined once: phases, windows, models, numbers.

Files and frames keep their raw keys (``after_phase1``, window ``3``, student ``minilm-l6:0,1``); whatever a
reader sees goes through here, so every figure, table and widget says "after phase 1", "W3",
"minilm-l6 (layers 0–1)" and rounded numbers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

PHASE_LABELS = {
    "before_phase1": "before phase 1",
    "after_phase1": "after phase 1",
    "after_phase2": "after phase 2",
    "after_phase3": "after phase 3",
    "phase1": "phase 1",  # history.json / metrics.json["phases"] keys
    "phase2": "phase 2",
    "phase3": "phase 3",
}


def phase_label(phase: str) -> str:
    """Readable phase name ("after_phase1" -> "after phase 1"); unknown labels pass through."""
    return PHASE_LABELS.get(phase, str(phase))


def _missing(value) -> bool:
    """None, NaN, NaT or pd.NA."""
    return value is None or (pd.api.types.is_scalar(value) and not isinstance(value, str) and bool(pd.isna(value)))


def window_label(window) -> str:
    """"W3" for a window given as 3, 3.0 or "3"; "" for none (None, NaN, "")."""
    if _missing(window) or window == "":
        return ""
    try:
        number = float(window)
    except (TypeError, ValueError):
        raise ValueError(f"window_label: a window is a whole number, got {window!r}") from None
    if math.isnan(number):
        return ""
    if not number.is_integer():
        raise ValueError(f"window_label: a window is a whole number, got {window!r}")
    return f"W{int(number)}"


def layers_text(layers: Sequence[int]) -> str:
    """"0–1" for consecutive layers, "0, 2, 5" otherwise."""
    layers = [int(x) for x in layers]
    if len(layers) > 1 and layers == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}–{layers[-1]}"
    return ", ".join(map(str, layers))


def model_label(model: str | None, layers: Sequence[int] | None = None) -> str:
    """A model as a reader should see it: the directory name of a path, and the layers a cut student keeps.

    ``model_label("minilm-l6:0,1")`` and ``model_label("minilm-l6", [0, 1])`` give "minilm-l6 (layers 0–1)";
    ``model_label("/tmp/x/asc")`` gives "asc". The run key ``name:0,1`` is how ``collect_runs`` and
    ``alad bench`` name a cut student.
    """
    if model is None:
        return "?"
    name = str(model)
    if layers is None and ":" in name and not os.path.exists(name):
        name, _, spec = name.rpartition(":")
        try:
            layers = [int(x) for x in spec.split(",")]
        except ValueError:
            name, layers = str(model), None
    name = Path(name).name if ("/" in name or os.sep in name) else name
    if not layers:
        return name
    return f"{name} (layer {layers[0]})" if len(layers) == 1 else f"{name} (layers {layers_text(layers)})"


def number_text(value, digits: int = 2) -> str:
    """A number for a cell: "" when missing, whole numbers without decimals, others rounded to ``digits``;
    strings (already formatted cells) pass through."""
    if _missing(value):
        return ""
    if isinstance(value, str):
        return str(value)
    try:
        value = float(value)  # numpy and pandas scalars too
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(value):
        return ""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.{digits}f}"
