"""Window-size explorer: compare adapters trained with different window sizes n, interactively.

``ExplorerData`` holds, per trained window, the probe rows (``probes.probe_frame`` over all phases), an
optional UMAP frame and the task scores, plus an optional way to probe a sentence typed by the user.
``WindowExplorer`` shows them with a window slider, a phase selector, a probe-sentence menu and a text box;
moving any of them redraws the UMAP scatter, the per-token MSE heatmap and the scores.

Live figures are ``plotly.graph_objects.FigureWidget`` (needs the ``anywidget`` package); without it, plain
figures are redrawn into ``ipywidgets.Output`` areas. Where no widget front end can run (nbconvert, nbmake,
static HTML) ``display()`` shows static figures of the current state instead: that is the case outside an
IPython kernel, with ``static=True``, or when the environment variable ``ALAD_STATIC_WIDGETS=1`` is set.

Every control change redraws every view from all the controls' current values (one path: no view can lag
behind the others), and every ``display()`` builds fresh figure views from them: after a page reload, whose
front end has lost the old views ("model not found"), displaying the explorer again shows its current state.
"""

from __future__ import annotations

import contextlib
import html
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go

from alad_kit.analysis import viz
from alad_kit.analysis.probes import PROBE_COLUMNS, embed_for_probes, load_run_frame, probe_frame
from alad_kit.analysis.table import collect_runs
from alad_kit.core.rundir import PROBES_STEM, UMAP_STEM

# embed(sentence, window) -> probe rows of that one sentence (any phases), or a precomputed
# {sentence: {window: rows}} mapping.
SentenceProber = Callable[[str, int], pd.DataFrame] | Mapping[str, Mapping[int, pd.DataFrame]]
STATIC_ENV = "ALAD_STATIC_WIDGETS"


@dataclass(frozen=True)
class ExplorerData:
    probes: Mapping[int, pd.DataFrame]  # window -> probe rows (PROBE_COLUMNS) of all recorded phases
    umaps: Mapping[int, pd.DataFrame] = field(
        default_factory=dict
    )  # window -> umap rows (+ optional "phase")
    scores: Mapping[int, Mapping[str, float]] = field(default_factory=dict)  # window -> task scores
    embed: SentenceProber | None = None  # probes a typed sentence; None disables the text box
    title: str = ""  # shown above the controls (e.g. "POS · minilm-l6 · frozen")

    def __post_init__(self):
        if not self.probes:
            raise ValueError("ExplorerData: no probe frames (need at least one window)")
        for window, df in self.probes.items():
            if not isinstance(window, int) or window < 1:
                raise ValueError(f"ExplorerData: window keys must be positive ints, got {window!r}")
            missing = [c for c in PROBE_COLUMNS if c not in df.columns]
            if missing:
                raise ValueError(f"ExplorerData: probe frame of window {window} lacks column(s) {missing}")
        extra = set(self.umaps) - set(self.probes)
        if extra:
            raise ValueError(f"ExplorerData: UMAP frames for windows {sorted(extra)} without probe frames")

    @property
    def windows(self) -> list[int]:
        return sorted(self.probes)

    @property
    def phases(self) -> list[str]:
        frames = [*self.probes.values(), *(u for u in self.umaps.values() if "phase" in u.columns)]
        return viz.ordered_phases(p for df in frames for p in df["phase"])

    def probe_sentence(self, sentence: str, window: int) -> pd.DataFrame | None:
        """Probe rows of a typed sentence for a window, or None when no prober covers it."""
        if self.embed is None:
            return None
        if callable(self.embed):
            return self.embed(sentence, window)
        return self.embed.get(sentence, {}).get(window)

    @classmethod
    def from_runs(
        cls,
        runs: str | os.PathLike | Sequence[str | os.PathLike],
        task: str | None = None,
        student: str | None = None,
        mode: str | None = None,
        seed: int | None = None,
        embed: SentenceProber | None = None,
    ) -> ExplorerData:
        """Build from run directories (or one directory searched recursively) that wrote probe files.

        Each run needs ``metrics.json`` (window, scores) and ``probes.csv|parquet``; an
        ``umap.csv|parquet`` is used when present. Runs without a window or probe file are
        skipped; filters narrow the runs to one configuration. Two runs with the same window (e.g. seeds)
        -> the lowest seed is used, with a warning.
        """
        roots = [runs] if isinstance(runs, (str, os.PathLike)) else list(runs)
        found = pd.concat([collect_runs(r) for r in roots], ignore_index=True)
        for column, value in (("task", task), ("student", student), ("mode", mode), ("seed", seed)):
            if value is not None and len(found):
                found = found[found[column] == value]
        found = found[found["window"].notna()] if len(found) else found
        probes, umaps, scores = {}, {}, {}
        for _, run in found.sort_values(["window", "seed"], na_position="last").iterrows():
            window = int(run["window"])
            frame = load_run_frame(run["run_dir"], PROBES_STEM)
            if frame is None:
                continue
            if window in probes:
                warnings.warn(
                    f"ExplorerData.from_runs: several runs with window {window}; using the first",
                    stacklevel=2,
                )
                continue
            probes[window] = frame
            umap_frame = load_run_frame(run["run_dir"], UMAP_STEM)
            if umap_frame is not None:
                umaps[window] = umap_frame
            scores[window] = {
                k[len("score.") :]: v for k, v in run.items() if k.startswith("score.") and pd.notna(v)
            }
        if not probes:
            raise ValueError(
                f"ExplorerData.from_runs: no run with a window and an {PROBES_STEM} file in {roots}"
            )
        title = " · ".join(str(v) for v in (task, student, mode) if v is not None)
        return cls(probes=probes, umaps=umaps, scores=scores, embed=embed, title=title)


def make_sentence_prober(
    student,
    student_tokenizer,
    teacher,
    teacher_tokenizer,
    adapters: Mapping[int, object],
    phase: str = "after_phase3",
) -> Callable[[str, int], pd.DataFrame]:
    """``embed`` callable for ``ExplorerData``: probe a typed sentence with the adapter of a window.

    ``adapters`` maps window -> trained ``AlignmentAdapter`` (labelled ``phase``) or window -> {phase:
    adapter} to show several phases. Results are cached per (sentence, window).
    """
    cache: dict[tuple[str, int], pd.DataFrame] = {}

    def probe(sentence: str, window: int) -> pd.DataFrame:
        key = (sentence.strip(), window)
        if key not in cache:
            per_phase = (
                adapters[window] if isinstance(adapters[window], Mapping) else {phase: adapters[window]}
            )
            frames = []
            for name, adapter in per_phase.items():
                v = embed_for_probes(
                    student, student_tokenizer, adapter, teacher, teacher_tokenizer, [key[0]]
                )
                frames.append(probe_frame(v.words, None, v.adapted, v.teacher, name))
            cache[key] = pd.concat(frames, ignore_index=True)
        return cache[key]

    return probe


# --------------------------------------------------------------------------------------------------
# The explorer
# --------------------------------------------------------------------------------------------------


def _figure_widgets_available() -> bool:
    try:
        go.FigureWidget()
    except ImportError:  # plotly >= 6 needs anywidget for FigureWidget
        return False
    return True


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class WindowExplorer:
    """Slider over windows, phase toggle, sentence menu and text box driving three views.

    Public state for tests and notebooks: ``window_slider``, ``phase_buttons``, ``sentence_menu``,
    ``text_box``, ``scores_html``, ``umap_figure``, ``heatmap_figure`` (FigureWidget or Figure),
    ``widget`` (the whole VBox), ``figures()`` (static copies of the current views).
    """

    def __init__(self, data: ExplorerData, static: bool | None = None, live_figures: bool | None = None):
        self.data = data
        env_static = os.environ.get(STATIC_ENV, "").lower() in ("1", "true", "yes")
        self.static = static if static is not None else (env_static or not _in_kernel())
        self._live = _figure_widgets_available() if live_figures is None else live_figures
        self.message = ""  # why the heatmap does not show what was asked (e.g. no prober for typed text)
        self._muted = False  # True while controls are changed programmatically

        self.shown: dict = {}  # the control values the figures were last drawn from (see ``controls``)
        self._make_controls(window=data.windows[-1], phase=data.phases[-1], sentence=None, text="")
        self._build_views()

    def _make_controls(self, window: int, phase: str, sentence, text: str) -> None:
        """New control widgets set to these values, observed by the explorer (old ones, if any, closed)."""
        data = self.data
        for old in getattr(self, "_controls", []):
            with contextlib.suppress(Exception):
                old.close()
        self.window_slider = widgets.SelectionSlider(
            options=data.windows, value=window, description="window n", continuous_update=False
        )
        self.phase_buttons = widgets.ToggleButtons(
            options=[(viz.phase_label(p), p) for p in data.phases], value=phase, description="phase"
        )
        self.sentence_menu = widgets.Dropdown(description="sentence")
        self.text_box = widgets.Text(
            value=text,
            placeholder="type a sentence and press Enter" if data.embed is not None else "(no prober: text off)",
            description="your text",
            continuous_update=False,
            disabled=data.embed is None,
        )
        self.scores_html = widgets.HTML()
        self._header = widgets.HTML(f"<b>{html.escape(data.title)}</b>") if data.title else widgets.HTML()
        self._fill_sentence_menu()
        if sentence in [value for _, value in self.sentence_menu.options]:
            self.sentence_menu.value = sentence
        self._controls = [self.window_slider, self.phase_buttons, self.sentence_menu, self.text_box,
                          self.scores_html, self._header]
        self.window_slider.observe(self._on_window, names="value")
        self.phase_buttons.observe(self._on_change, names="value")
        self.sentence_menu.observe(self._on_change, names="value")
        self.text_box.observe(self._on_change, names="value")

    def _build_views(self) -> None:
        """New figure views and a new ``widget`` box drawn from the current controls.

        Called at construction and on every ``display()``, which first makes new controls with the current
        values: after a page reload JupyterLab may not get the old widgets back from the kernel (it shows
        "Loading widget..." for ever), and a box holding any of them fails with "widget model not found" (seen
        in JupyterLab 4.6 with Chromium, scripts/explorer_reload_check.py). Every widget of a display is new,
        so it shows, in the state the reader left it.
        """
        for old in getattr(self, "_views", []):
            with contextlib.suppress(Exception):
                old.close()
        umap, heatmap = self._umap_view(), self._heatmap_view()
        if self._live:
            self.umap_figure, self.heatmap_figure = go.FigureWidget(umap), go.FigureWidget(heatmap)
            self._views = [self.umap_figure, self.heatmap_figure]
        else:
            self.umap_figure, self.heatmap_figure = umap, heatmap
            self._outputs = [widgets.Output(), widgets.Output()]
            self._views = list(self._outputs)
            self._redraw_outputs()
        self._update_scores()
        self.shown = self.controls()
        self.widget = widgets.VBox(
            [
                self._header,
                widgets.HBox([self.window_slider, self.phase_buttons]),
                widgets.HBox([self.sentence_menu, self.text_box]),
                self.scores_html,
                *self._views,
            ]
        )

    # ---- state -> figures -------------------------------------------------------------------------
    @property
    def window(self) -> int:
        return self.window_slider.value

    @property
    def phase(self) -> str:
        return self.phase_buttons.value

    def controls(self) -> dict:
        """The control values every view is drawn from: window, phase, probe sentence, typed text."""
        return {"window": self.window, "phase": self.phase, "sentence": self.sentence_menu.value,
                "text": self.text_box.value.strip()}

    def _fill_sentence_menu(self) -> None:
        df = self.data.probes[self.window]
        options = []
        for sentence, rows in df.groupby("sentence", sort=True):
            words = list(rows.drop_duplicates("position").sort_values("position")["token"])
            preview = " ".join(words[:8]) + (" …" if len(words) > 8 else "")
            options.append((f"{sentence}: {preview}", sentence))
        keep = self.sentence_menu.value
        self.sentence_menu.options = options
        values = [v for _, v in options]
        self.sentence_menu.value = keep if keep in values else (values[0] if values else None)

    def current_sentence_frame(self) -> pd.DataFrame:
        """Probe rows shown in the heatmap: the typed sentence if probed, else the chosen probe sentence."""
        self.message = ""
        text = self.text_box.value.strip()
        if text:
            typed = self.data.probe_sentence(text, self.window)
            if typed is not None and len(typed):
                return typed
            self.message = (
                f"no probe of the typed sentence for window {self.window}; showing a probe sentence"
            )
        df = self.data.probes[self.window]
        return df[df["sentence"] == self.sentence_menu.value]

    def _heatmap_view(self) -> go.Figure:
        rows = self.current_sentence_frame()
        fig = viz.mse_heatmap(rows, title=f"Per-token MSE, window n={self.window}")
        fig.update_layout(height=320)
        return fig

    def _umap_view(self) -> go.Figure:
        frame = self.data.umaps.get(self.window)
        if frame is not None and "phase" in frame.columns:
            frame = frame[frame["phase"] == self.phase]
        if frame is None or not len(frame):
            fig = go.Figure()
            fig.update_layout(title=f"No UMAP for window n={self.window}, {viz.phase_label(self.phase)}")
            return fig
        return viz.umap_scatter(frame, title=f"Word vectors (UMAP), window n={self.window}")

    def _update_scores(self) -> None:
        probes = self.data.probes[self.window]
        phase_rows = probes[probes["phase"] == self.phase]
        cells = {k: f"{v:.4g}" for k, v in self.data.scores.get(self.window, {}).items()}
        if len(phase_rows):
            cells[f"MSE ({viz.phase_label(self.phase)})"] = f"{phase_rows['mse'].mean():.4g}"
            cells[f"cosine ({viz.phase_label(self.phase)})"] = f"{phase_rows['cosine'].mean():.4g}"
        header = "".join(f"<th style='padding:0 8px'>{html.escape(k)}</th>" for k in cells)
        values = "".join(f"<td style='padding:0 8px'>{v}</td>" for v in cells.values())
        note = f"<div><i>{html.escape(self.message)}</i></div>" if self.message else ""
        self.scores_html.value = (
            f"<div>window n={self.window}</div><table><tr>{header}</tr><tr>{values}</tr></table>{note}"
        )

    # ---- events -----------------------------------------------------------------------------------
    def _on_window(self, _change=None) -> None:
        self._muted = True  # refilling the sentence menu fires its observer; one redraw below is enough
        try:
            self._fill_sentence_menu()
        finally:
            self._muted = False
        self._refresh()

    def _on_change(self, _change=None) -> None:
        if not self._muted:
            self._refresh()

    def _refresh(self) -> None:
        """Redraw every view (UMAP, heatmap, scores) from the current controls: one path for all controls,
        so no view can stay on an older window, phase or sentence than the others."""
        _replace(self.heatmap_figure, self._heatmap_view())
        _replace(self.umap_figure, self._umap_view())
        self._update_scores()
        self.shown = self.controls()
        if not self._live:
            self._redraw_outputs()

    def _redraw_outputs(self) -> None:
        if not _in_kernel():  # nothing can render the Output areas; figures() still has the state
            return
        from IPython.display import display

        for out, fig in zip(self._outputs, (self.umap_figure, self.heatmap_figure)):
            out.clear_output(wait=True)
            with out:
                display(fig)

    # ---- display ----------------------------------------------------------------------------------
    def figures(self) -> list[go.Figure]:
        """Static copies of the current views: [UMAP scatter, MSE heatmap]."""
        return [go.Figure(self.umap_figure), go.Figure(self.heatmap_figure)]

    def display(self) -> None:
        """Show the live widget, or static figures where no widget front end runs (see module doc)."""
        from IPython.display import HTML, display

        if self.static:
            display(HTML(self.scores_html.value), *self.figures())
        else:
            self._make_controls(**self.controls())  # fresh widgets in the current state (see _build_views)
            self._build_views()
            display(self.widget)

    def _ipython_display_(self) -> None:
        self.display()


def _replace(target: go.Figure, new: go.Figure) -> None:
    """Swap all traces and the layout of ``target`` (Figure or FigureWidget) for those of ``new``."""
    batch = target.batch_update() if isinstance(target, go.FigureWidget) else contextlib.nullcontext()
    with batch:
        target.data = ()
        target.add_traces(list(new.data))
        target.layout = new.layout
