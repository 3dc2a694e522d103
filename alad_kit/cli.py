"""The ``alad`` command: info, run, demo, notebooks, clean, check-gpu, compress, bench, table, study, report, predict, evaluate, export."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from alad_kit.adapter import ADAPTER_KINDS
from alad_kit.core.config import ADAPTER_PRECISIONS, RUN_DEFAULTS, RUN_FLAGS, SCALES, TASKS, TRAINABLE_PARTS
from alad_kit.core.logs import configure_logging, one_line
from alad_kit.tasks import DEFAULT_TASK


def _info(args) -> int:
    from alad_kit.analysis.info import collect_info, format_info

    info = collect_info(data_dir=args.data_dir, cache_dir=args.cache_dir)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def _layers(text: str | None):
    if not text:
        return None
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--student-layers wants comma-separated integers, got {text!r}") from None


def _run_defaults() -> dict:
    """What ``alad run`` uses where RunConfig has no default, or where the environment chooses."""
    return {**RUN_DEFAULTS, "scale": os.environ.get("ALAD_SCALE", "smoke")}


def _add_run_arguments(s: argparse.ArgumentParser) -> None:
    from accelerate.utils import LoggerType

    from alad_kit.core.config import RUN_CHOICES, RunConfig
    from alad_kit.core.config_args import add_dataclass_arguments

    s.add_argument("--config", default=None, metavar="FILE",
                   help="JSON (or YAML) file of RunConfig fields, e.g. a metrics.json 'config'; flags override it")
    add_dataclass_arguments(s, RunConfig, flags=RUN_FLAGS, choices=RUN_CHOICES, defaults=_run_defaults())
    s.add_argument("--resume", action="store_true", help="continue a killed run from its checkpoints")
    s.add_argument("--log-with", default=None, choices=[t.value for t in LoggerType],
                   help="accelerate tracker for loss/lr per step and validation per epoch, under OUT/logs/")
    s.set_defaults(fn=_run, error=s.error)  # error: checks that need the config file read first


def run_config_from_args(args):
    """The RunConfig of ``alad run``: defaults, then the --config file, then the flags given."""
    from alad_kit.core.config import RunConfig
    from alad_kit.core.config_args import load_config_file, merge_config

    from_file = load_config_file(args.config, RunConfig) if args.config else {}
    values, missing = merge_config(RunConfig, args, from_file, _run_defaults())
    if missing:
        args.error("the following arguments are required: " + ", ".join(f"--{RUN_FLAGS.get(m, m)}" for m in missing))
    return RunConfig(**values)


def _run(args) -> int:
    from alad_kit.core.rundir import metrics_path
    from alad_kit.pipeline.run import run

    cfg = run_config_from_args(args)
    metrics = run(cfg, resume=args.resume, log_with=args.log_with)
    print(json.dumps({"scores": metrics["scores"], "size_pct": round(metrics["size_pct"], 2),
                      "out": str(metrics_path(cfg.out))}, indent=2))
    return 0


def _demo(args) -> int:
    from .pipeline.demo import run_demo

    run_demo(out=args.out, scale=args.scale, data_dir=args.data_dir)
    return 0


def _notebooks(args) -> int:
    from alad_kit.ui.notebook import WORK_COPY_DIR, copy_notebooks

    repo = Path(__file__).resolve().parents[1]
    source = repo / "notebooks"
    if not source.is_dir():
        raise FileNotFoundError(f"{source} is missing: alad notebooks works in a clone of the repository")
    dest = Path(args.to) if args.to else repo / WORK_COPY_DIR
    copied, kept = copy_notebooks(source, dest)
    print(f"alad notebooks: {len(copied)} copied to {dest}" + (f", {len(kept)} kept as they were" if kept else "")
          + f"; open them with: jupyter lab {dest}")
    return 0


def _clean(args) -> int:
    from alad_kit.pipeline.clean import clean

    plan = clean(args.folders, apply=args.apply)
    verb = "removed" if args.apply else "would remove"
    for item in plan:
        print(f"alad clean: {verb} {item.path} ({item.bytes / 1e6:.1f} MB): {item.why}")
    total = sum(item.bytes for item in plan) / 1e6
    print(f"alad clean: {verb} {len(plan)} folders, {total:.1f} MB" + ("" if args.apply or not plan else
                                                                       "; run again with --apply to delete them"))
    return 0


def _check_gpu(args) -> int:
    from alad_kit.pipeline.gpu_check import check_gpu

    report = check_gpu(args.out, dry_run=args.dry_run, data_dir=args.data_dir, work_dir=args.work_dir,
                       run_tests=not args.no_tests)
    run = report["run"]
    print(json.dumps({"ok": report["ok"], "device": report["device"], "tests": {
        k: report["tests"].get(k) for k in ("passed", "failed", "errors", "skipped", "error") if k in report["tests"]},
        "run_wall_seconds": run.get("wall_seconds"), "run_error": run.get("error"),
        "wall_seconds": report["wall_seconds"], "out": str(args.out)}, indent=2))
    return 0 if report["ok"] else 1


def _compress(args) -> int:
    from alad_kit.compress import compress

    options = json.loads(args.options) if args.options else {}
    report = compress(args.method, args.model, args.out, **options)
    print(json.dumps(report, indent=2, default=str))
    return 0


def _bench(args) -> int:
    from alad_kit.analysis.bench import run_bench

    if args.training:
        return _bench_training(args)
    result = run_bench(teacher=args.teacher, students=args.students, windows=tuple(args.windows),
                       batch_size=args.batch_size, seq_len=args.seq_len, repeats=args.repeats, out=args.out,
                       device=args.device, kinds=tuple(args.kinds), adapter_precision=args.adapter_precision)
    print(json.dumps(result.get("summary", result), indent=2, default=str))
    return 0


def _bench_training(args) -> int:
    from alad_kit.analysis.bench import _load_student, write_bench_json
    from alad_kit.analysis.train_bench import training_bench
    from alad_kit.models.zoo import load_encoder

    if args.device and "," in args.device:
        args.error("bench --training times one device: --device cpu or --device cuda[:N], not a list")
    teacher_dim = load_encoder(args.teacher)[0].config.hidden_size
    result = training_bench(_load_student(args.students[0]), teacher_dim=teacher_dim, batch_size=args.batch_size,
                            seq_len=args.seq_len, repeats=args.repeats, window=max(args.windows),
                            device=args.device)
    result |= {"teacher": args.teacher, "student": args.students[0]}
    write_bench_json(result, args.out)
    print(json.dumps({k: round(v, 2) for k, v in result["ratios"].items()}, indent=2))
    return 0


def _table(args) -> int:
    if args.sweep:
        from alad_kit.analysis.sweep_table import write_sweep_table

        paths = write_sweep_table(args.runs_dir, args.sweep, args.out)
    elif args.compression:
        from alad_kit.analysis.compression_table import write_compression_table

        paths = write_compression_table(args.runs_dir, args.out, task=args.task, window=args.window,
                                        bench=args.bench, reports=args.reports)
    else:
        from alad_kit.analysis.table import write_table

        paths = write_table(args.runs_dir, args.out, bench=args.bench)
    print(Path(paths["md"]).read_text() if "md" in paths else "")
    print("\n".join(f"wrote {p}" for p in paths.values()))
    return 0


def _study(args) -> int:
    from alad_kit.pipeline.study import run_study, write_outputs

    if args.report_only:  # every study below --out, from the metrics.json files already there
        paths = write_outputs(args.out, args.bench, args.fill or (), args.against)
        print(Path(paths["claims_md"]).read_text())
        print("\n".join(f"wrote {p}" for p in paths.values()))
        return 0
    from alad_kit.core.config import RunConfig
    from alad_kit.core.config_args import merge_config
    from alad_kit.pipeline.study import ROW_FIELDS

    values, _ = merge_config(RunConfig, args, defaults=_run_defaults())
    values = {k: v for k, v in values.items() if k not in ROW_FIELDS}  # args.out is the study's folder
    if values.get("task") is None:
        raise ValueError("alad study: --task is required (unless --report-only)")
    if args.fill or args.against:
        raise ValueError("alad study: --fill and --against go with --report-only")
    named = ("task", "teacher", "student", "student_layers", "scale", "data_dir", "cache_dir", "device")
    paths = run_study(out=args.out, seeds=args.seeds, rows=args.rows, bench=args.bench,
                      **{k: values.pop(k, None) for k in named}, options=values)
    print(Path(paths["claims_md"]).read_text())
    print("\n".join(f"wrote {p}" for p in paths.values()))
    return 0


def _probe_layers(args) -> int:
    from alad_kit.analysis.probes.layers import ProbeSettings, probe_layers
    from alad_kit.core.config_args import merge_config

    values, _ = merge_config(ProbeSettings, args)
    result = probe_layers(args.task, args.models, args.data_dir, ProbeSettings(**values), out=args.out,
                          cache_dir=Path(args.out) / ".features", model_cache_dir=args.cache_dir, device=args.device)
    for name, entry in result["models"].items():
        print(f"{name}: best hidden state {entry['best_layer']} ({100 * entry['best_score']:.1f}), "
              f"last {len(entry['layers']) - 1} ({100 * entry['last_layer_score']:.1f})")
    print(f"wrote {Path(args.out) / 'probe_layers.json'} and probe_layers.html")
    return 0


def _report(args) -> int:
    from alad_kit.analysis.report import write_report

    print(f"wrote {write_report(args.run_dir)}")
    return 0


def _predict(args) -> int:
    from alad_kit.pipeline.predict import predict_rows

    for row in predict_rows(args.model, args.texts, args.file, args.question, args.context, args.device or "cpu"):
        print(json.dumps(row, ensure_ascii=False))
    return 0


def _evaluate(args) -> int:
    from alad_kit.pipeline.evaluation import evaluate_model

    from .core.io import write_json_atomic

    sample = args.sample if args.sample in (None, "run") else int(args.sample)
    result = evaluate_model(args.model, args.data, split=args.split, sample=sample, device=args.device or "cpu",
                            adapter_precision=args.adapter_precision)
    if result["unknown_labels"]:
        print(f"alad evaluate: {sum(result['unknown_labels'].values())} gold tags with labels the model does not "
              f"know: {result['unknown_labels']}", file=sys.stderr)
    print(json.dumps(result["scores"], indent=2))
    if args.out:
        write_json_atomic(Path(args.out), result["scores"])
    return 0


def _export(args) -> int:
    from alad_kit.models.export import check_onnx, export_onnx
    from alad_kit.models.model import AladModel

    model = AladModel.from_pretrained(args.model, adapter_precision="fp32")  # the graph is float32
    path = export_onnx(model, args.out)
    report = {"out": str(path), **check_onnx(model, path)}
    print(json.dumps(report, indent=2))
    if report["max_abs_diff"] > 1e-4:
        print(f"alad export: ONNX differs from PyTorch by {report['max_abs_diff']:.2e} (> 1e-4)", file=sys.stderr)
        return 1
    return 0


def _deploy_parsers(sub) -> None:
    s = sub.add_parser("predict", help="tag texts / answer a question with a deployed model folder or hub id")
    s.add_argument("model", help="model folder (a run's OUT/model) or hub id")
    s.add_argument("texts", nargs="*", help="texts to tag (POS/NER)")
    s.add_argument("--file", default=None, help="one text per line")
    s.add_argument("--question", default=None, help="QA: the question")
    s.add_argument("--context", default=None, help="QA: the text holding the answer")
    s.add_argument("--device", default=None)
    s.set_defaults(fn=_predict)

    s = sub.add_parser("evaluate", help="score a deployed model on any file/folder the loaders read (JSON)")
    s.add_argument("model")
    s.add_argument("--data", required=True, help="a data file (scored whole), a folder, or 'wnut16'")
    s.add_argument("--split", default="test", help="split of a folder (train, validation, test)")
    s.add_argument("--sample", default=None,
                   help="'run': the run's own test subsample (reproduces its scores); N: N examples, same shuffle")
    s.add_argument("--out", default=None, help="also write the scores to this JSON file")
    s.add_argument("--adapter-precision", default=None, choices=list(ADAPTER_PRECISIONS),
                   help="run the adapter in this precision (default: the folder's; int8 students: int8)")
    s.add_argument("--device", default=None)
    s.set_defaults(fn=_evaluate)

    s = sub.add_parser("export", help="export a deployed model (ONNX), check parity and latency")
    s.add_argument("model")
    s.add_argument("--format", default="onnx", choices=["onnx"])
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_export)


def _results_parsers(sub, common: argparse.ArgumentParser) -> None:
    """The commands that measure and read results: bench, table, study, report (in --help's order)."""
    s = sub.add_parser("bench", help="size/latency/FLOPs of teacher, students and adapters (JSON)")
    s.add_argument("--teacher", default="mpnet-base")
    s.add_argument("--students", nargs="+", default=["minilm-l6"])
    s.add_argument("--windows", nargs="+", type=int, default=[1, 3, 5])
    s.add_argument("--kinds", nargs="+", default=["dense"], choices=list(ADAPTER_KINDS), help="adapter kinds")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--seq-len", type=int, default=128)
    s.add_argument("--repeats", type=int, default=10)
    s.add_argument("--device", default=None,
                   help="cpu, cuda, or cpu,cuda (default: CPU, and CUDA when present); --training: one device "
                        "(default: CUDA when present, else CPU)")
    s.add_argument("--out", default="bench.json")
    s.add_argument("--training", action="store_true",
                   help="training steps/s instead: fp32 vs bf16, cached vs live frozen student (first student)")
    s.add_argument("--adapter-precision", default="fp32", choices=[*ADAPTER_PRECISIONS, "follow"],
                   help="precision the adapters are timed in; follow: int8 next to an int8 student (as deployed)")
    s.set_defaults(fn=_bench, error=s.error)

    s = sub.add_parser("table", help="collect metrics.json files into the paper's Table 1 layout")
    s.add_argument("runs_dir")
    s.add_argument("--out", default=None)
    s.add_argument("--bench", default=None, help="alad bench JSON that fills the Spd column")
    s.add_argument("--sweep", default=None, choices=list(TRAINABLE_PARTS),
                   help="a learning-rate sweep of this part instead: one row per run (sweep_<part>.md)")
    s.add_argument("--compression", action="store_true",
                   help="one row per student: head-only vs frozen ALAd, size, speed, FLOPs (compression.md)")
    s.add_argument("--task", default=DEFAULT_TASK, choices=TASKS, help="task of --compression")
    s.add_argument("--window", type=int, default=5, help="ALAd window of --compression")
    s.add_argument("--reports", default=None,
                   help="JSON {student dir name: compression_report} for students whose directories are gone")
    s.set_defaults(fn=_table)

    s = sub.add_parser("study", help="the claims study: every row x seed, claims.md/json, table")
    from alad_kit.core.config import RUN_CHOICES, RunConfig
    from alad_kit.core.config_args import add_dataclass_arguments
    from alad_kit.pipeline.study import ROW_FIELDS

    # every RunConfig field the rows do not set is a flag, as for alad run (--task: required unless --report-only)
    add_dataclass_arguments(s, RunConfig, flags=RUN_FLAGS, choices=RUN_CHOICES, defaults=_run_defaults(),
                            skip=ROW_FIELDS)
    s.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    s.add_argument("--out", required=True, help="study directory: <row>/seed<k>/ runs, claims, table")
    s.add_argument("--rows", nargs="+", default=None, help="only these rows (default: all; see alad_kit.pipeline.study.ROWS)")
    s.add_argument("--bench", default=None, help="alad bench JSON: Spd column and the speed part of C9")
    s.add_argument("--report-only", action="store_true",
                   help="train nothing: rewrite claims and tables from the runs already below --out")
    s.add_argument("--fill", nargs="+", default=None, metavar="README",
                   help="with --report-only: rewrite the <!-- alad:claims-summary/table --> blocks of these files")
    s.add_argument("--against", default=None, metavar="STUDY_DIR",
                   help="with --fill: the study folder (e.g. the same rows under other budgets) that the "
                        "<!-- alad:claims-budget-effect --> block compares --out with")
    s.set_defaults(fn=_study)

    s = sub.add_parser("probe-layers", parents=[common],
                       help="a linear probe on every hidden state of each model (validation scores, JSON + figure)")
    s.add_argument("--task", required=True, choices=TASKS)
    s.add_argument("--models", nargs="+", required=True, help="NAME or NAME:0,1 (as for alad bench)")
    s.add_argument("--out", required=True, help="folder for probe_layers.json/.html (features cached below it)")
    s.add_argument("--device", default=None)
    from alad_kit.analysis.probes.layers import ProbeSettings
    from alad_kit.core.config_args import add_dataclass_arguments

    add_dataclass_arguments(s, ProbeSettings)
    s.set_defaults(fn=_probe_layers)

    s = sub.add_parser("report", help="one self-contained HTML page of a run's figures")
    s.add_argument("run_dir")
    s.set_defaults(fn=_report)


def build_parser() -> argparse.ArgumentParser:
    from alad_kit.core.io import __version__

    p = argparse.ArgumentParser(prog="alad", description="Alignment Adapters for compressed encoders")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    loud = p.add_mutually_exclusive_group()
    loud.add_argument("-v", "--verbose", action="store_true",
                      help="debug messages, and an error's traceback (before or after the command)")
    loud.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=None, help="dataset root (default: $ALAD_DATA_DIR)")
    common.add_argument("--cache-dir", default=None, help="model/embedding cache root")

    s = sub.add_parser("info", parents=[common], help="versions, device, offline models, datasets")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=_info)

    s = sub.add_parser("run", help="phases 1-3 for one task/student/mode/window",
                       description="Every RunConfig field is a flag; --config FILE sets them from JSON/YAML first.")
    _add_run_arguments(s)

    s = sub.add_parser("demo", parents=[common], help="end-to-end ALAd on the embedded offline default")
    s.add_argument("--out", default="runs/demo")
    s.add_argument("--scale", default="tiny", choices=list(SCALES))
    s.set_defaults(fn=_demo)

    s = sub.add_parser("notebooks", help="copy the notebooks to my-notebooks/ (git ignores it) to run and edit them there")
    s.add_argument("--to", default=None, help="folder for the copies (default: my-notebooks/ in the repository)")
    s.set_defaults(fn=_notebooks)

    s = sub.add_parser("clean", help="list (--apply: delete) checkpoints of finished runs and caches no run uses")
    s.add_argument("folders", nargs="*", default=["runs"], help="runs folders to clean below (default: runs)")
    s.add_argument("--apply", action="store_true", help="delete; without it the command only lists")
    s.set_defaults(fn=_clean)

    s = sub.add_parser("check-gpu", parents=[common], help="CUDA tests + a timed full-scale run, one JSON (no network)")
    s.add_argument("--out", default="gpu_check.json")
    s.add_argument("--dry-run", action="store_true",
                   help="on the CPU at smoke scale (what CI runs): checks the command, not the GPU")
    s.add_argument("--work-dir", default=None, help="keep the run and its cache here (default: a temporary folder)")
    s.add_argument("--no-tests", action="store_true", help="only the timed run")
    s.set_defaults(fn=_check_gpu)

    s = sub.add_parser("compress", help="make a compressed student (asc, keep-layers, l1, dynamic-int8, ...)")
    s.add_argument("method")
    s.add_argument("--model", default="minilm-l6")
    s.add_argument("--out", required=True)
    s.add_argument("--options", default=None, help='JSON of method options, e.g. \'{"threshold": 0.9}\'')
    s.set_defaults(fn=_compress)

    _results_parsers(sub, common)
    _deploy_parsers(sub)
    _add_verbose(sub)
    return p


def _add_verbose(sub) -> None:
    """``-v`` after the command too (``alad run -v`` as ``alad -v run``): debug messages and tracebacks."""
    for command in sub.choices.values():  # SUPPRESS: a command's unset flag must not undo ``alad -v``
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="debug messages, and an error's traceback")


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure is exit code 2 and one line on stderr (``-v``: and the traceback)."""
    args = build_parser().parse_args(argv)
    configure_logging(verbose=args.verbose, quiet=args.quiet)
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        print(f"alad {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the catch-all: no traceback reaches a user who did not ask for one
        if args.verbose:
            traceback.print_exc()
        print(f"alad {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
