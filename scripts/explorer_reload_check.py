"""The window explorer (notebook 04) in a real browser: JupyterLab 4 in headless Chromium, driven by Playwright.

Steps: run every cell of a copy of notebook 04, change the explorer's sentence and window, save (as JupyterLab's
autosave does), reload the page, then run the cell holding just ``explorer`` again (what notebook 04 tells a
reader to do after a reload). After each step it records
what the page shows: whether the widget is there or JupyterLab's "Error displaying widget", and the titles of
the plotly figures (the heatmap's title names the window and the sentence). It writes one JSON and a PNG per
step, and exits 1 when the explorer does not come back showing the controls' current state.

Usage (a separate environment: Playwright is not a dependency of alad_kit; it drives the system Chromium):

    python -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    ALAD_SCALE=smoke /tmp/pw/bin/python scripts/explorer_reload_check.py OUT_DIR [--python PYTHON]

PYTHON is the interpreter that has alad_kit and JupyterLab (default: ``python3`` on PATH).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "04_window_explorer.ipynb"
ERROR = "Error displaying widget"
EXPLORER_PLOTS = ("Per-token MSE, window", "Word vectors (UMAP)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_lab(python: str, folder: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ALAD_STATIC_WIDGETS": "0"}
    cmd = [python, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--IdentityProvider.token=", "--allow-root",
           "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={folder}"]
    return subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _wait_idle(page, timeout_s: float) -> None:
    """Until no cell shows the running prompt [*] and the kernel says idle."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        prompts = page.locator(".jp-InputPrompt").all_inner_texts()
        busy = page.locator(".jp-Notebook-ExecutionIndicator[data-status='busy']").count()
        if prompts and not any("*" in p for p in prompts) and not busy:
            return
        time.sleep(2)
    raise TimeoutError(f"cells still running after {timeout_s} s")


def _state(page, name: str, out: Path) -> dict:
    for link in page.locator("text=Click to show javascript error").all():  # a widget view that failed to render
        link.click()
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    text = "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())  # outputs only, not the prose
    return {"step": name, "error_displaying_widget": text.count(ERROR), "model_not_found": text.count("not found"),
            "javascript_errors": [line for line in text.splitlines() if "Error" in line][:10],
            "loading_widget": text.count("Loading widget"),
            "sliders": page.locator(".widget-slider, .widget-hslider").count(),
            "titles": page.locator(".js-plotly-plot .gtitle").all_inner_texts(),
            "plots": [" ".join(plot.inner_text().split()) for plot in page.locator(".js-plotly-plot").all()]}


def _run_display_cell(page) -> None:
    """Run the cell holding just ``explorer`` (notebook 04 says to, after a reload)."""
    for cell in page.locator(".jp-CodeCell").all():
        if cell.locator(".jp-InputArea-editor").inner_text().strip() == "explorer":
            cell.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Shift+Enter")
            return
    raise RuntimeError(f"{NOTEBOOK} has no cell holding just `explorer`")


def check(out: Path, python: str, timeout_s: float) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="alad-explorer-"))
    (folder / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, folder / "notebooks" / NOTEBOOK)
    os.symlink(ROOT / "results", folder / "results")
    os.environ.setdefault("ALAD_RUNS_DIR", str(folder / "runs"))
    port = _free_port()
    lab = _start_lab(python, folder, port, out / "jupyterlab.log")
    steps = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or "chromium",
                                        args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 2400})
            console = []
            page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"[:300]) if msg.type in ("error", "warning") else None)
            url = f"http://127.0.0.1:{port}/lab/tree/notebooks/{NOTEBOOK}"
            for _ in range(60):  # the server takes a few seconds to listen
                try:
                    page.goto(url, timeout=10_000)
                    break
                except Exception:  # noqa: BLE001 - not listening yet
                    time.sleep(2)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            time.sleep(5)  # the kernel starts
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            time.sleep(5)
            _wait_idle(page, timeout_s)
            steps.append(_state(page, "1-ran-all-cells", out))
            menu = page.locator(".widget-dropdown select").first
            options = menu.locator("option").all_inner_texts()
            menu.select_option(index=min(1, len(options) - 1))
            slider = page.locator(".widget-slider .ui-slider-handle, .widget-hslider .slider-container").first
            slider.click()
            page.keyboard.press("Home")  # the smallest window
            time.sleep(8)
            steps.append(_state(page, "2-changed-sentence-and-window", out))
            page.keyboard.press("Control+s")  # what JupyterLab's autosave does every two minutes
            time.sleep(5)
            page.reload()
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            time.sleep(15)  # the widget manager reconnects to the running kernel
            steps.append(_state(page, "3-after-reload", out))
            _run_display_cell(page)
            time.sleep(5)
            _wait_idle(page, timeout_s)
            time.sleep(5)
            steps.append(_state(page, "4-explorer-cell-run-again", out))
            steps[-1]["console"] = console[-20:]
            browser.close()
    finally:
        lab.terminate()
        lab.wait(timeout=30)
    # the explorer's two figures (titles and tick labels: window and sentence); JupyterLab draws only the cells
    # near the viewport, so later static figures may be missing after a reload
    # (as sorted words: plotly's DOM order of the same labels varies between two drawings)
    changed, again = ([sorted(p.split()) for p in step["plots"] if any(title in p for title in EXPLORER_PLOTS)]
                      for step in (steps[1], steps[3]))
    report = {"steps": steps, "jupyterlab": subprocess.run([python, "-m", "jupyter", "lab", "--version"],
                                                           capture_output=True, text=True).stdout.strip(),
              "chromium": subprocess.run(["chromium", "--version"], capture_output=True, text=True).stdout.strip(),
              "comes_back_in_its_current_state": len(changed) == 2 and again == changed and steps[3]["sliders"] >= 1
              and not steps[3]["javascript_errors"]}
    (out / "explorer_reload.json").write_text(json.dumps(report, indent=2))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for explorer_reload.json and the screenshots")
    parser.add_argument("--python", default="python3", help="the interpreter with alad_kit and JupyterLab")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for the cells to run")
    args = parser.parse_args()
    report = check(args.out, args.python, args.timeout)
    print(json.dumps(report, indent=2))
    return 0 if report["comes_back_in_its_current_state"] else 1


if __name__ == "__main__":
    sys.exit(main())
