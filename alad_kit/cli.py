"""The ``alad`` command: info, run, demo, compress, bench, table, study, report."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from .adapter import ADAPTER_KINDS


def _info(args) -> int:
    from .info import collect_info, format_info

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


def _run(args) -> int:
    from .config import RunConfig
    from .run import run

    cfg = RunConfig(
        task=args.task, teacher=args.teacher, student=args.student, student_layers=args.student_layers,
        mode=args.mode, window=args.window, seed=args.seed, scale=args.scale, out=args.out,
        data_dir=args.data_dir, cache_dir=args.cache_dir, teacher_finetuned=args.teacher_finetuned,
        skip_phase1=args.skip_phase1, skip_phase2=args.skip_phase2, random_adapter=args.random_adapter,
        use_cache=not args.no_cache, is_teacher_run=args.teacher_baseline, device=args.device, lr=args.lr,
        head_lr=args.head_lr, adapter_lr=args.adapter_lr, student_lr=args.student_lr, lora_lr=args.lora_lr,
        precision=args.precision, strict_data=args.strict,
    )
    metrics = run(cfg, resume=args.resume)
    print(json.dumps({"scores": metrics["scores"], "size_pct": round(metrics["size_pct"], 2),
                      "out": str(Path(args.out) / "metrics.json")}, indent=2))
    return 0


def _demo(args) -> int:
    from .demo import run_demo

    run_demo(out=args.out, scale=args.scale, data_dir=args.data_dir)
    return 0


def _compress(args) -> int:
    from .compress import compress

    options = json.loads(args.options) if args.options else {}
    report = compress(args.method, args.model, args.out, **options)
    print(json.dumps(report, indent=2, default=str))
    return 0


def _bench(args) -> int:
    from .measure import run_bench

    if args.training:
        return _bench_training(args)
    result = run_bench(teacher=args.teacher, students=args.students, windows=tuple(args.windows),
                       batch_size=args.batch_size, seq_len=args.seq_len, repeats=args.repeats, out=args.out,
                       device=args.device, kinds=tuple(args.kinds))
    print(json.dumps(result.get("summary", result), indent=2, default=str))
    return 0


def _bench_training(args) -> int:
    from .measure import _load_student, write_bench_json
    from .train_bench import training_bench
    from .zoo import load_encoder

    teacher_dim = load_encoder(args.teacher)[0].config.hidden_size
    result = training_bench(_load_student(args.students[0]), teacher_dim=teacher_dim, batch_size=args.batch_size,
                            seq_len=args.seq_len, repeats=args.repeats, window=max(args.windows))
    result |= {"teacher": args.teacher, "student": args.students[0]}
    write_bench_json(result, args.out)
    print(json.dumps({k: round(v, 2) for k, v in result["ratios"].items()}, indent=2))
    return 0


def _table(args) -> int:
    if args.sweep:
        from .sweep_table import write_sweep_table

        paths = write_sweep_table(args.runs_dir, args.sweep, args.out)
    elif args.compression:
        from .compression_table import write_compression_table

        paths = write_compression_table(args.runs_dir, args.out, task=args.task, window=args.window,
                                        bench=args.bench, reports=args.reports)
    else:
        from .table import write_table

        paths = write_table(args.runs_dir, args.out, bench=args.bench)
    print(Path(paths["md"]).read_text() if "md" in paths else "")
    print("\n".join(f"wrote {p}" for p in paths.values()))
    return 0


def _study(args) -> int:
    from .study import run_study

    paths = run_study(task=args.task, teacher=args.teacher, student=args.student, out=args.out, seeds=args.seeds,
                      scale=args.scale, student_layers=args.student_layers, rows=args.rows, data_dir=args.data_dir,
                      cache_dir=args.cache_dir, device=args.device, bench=args.bench)
    print(Path(paths["claims_md"]).read_text())
    print("\n".join(f"wrote {p}" for p in paths.values()))
    return 0


def _report(args) -> int:
    from .report import write_report

    print(f"wrote {write_report(args.run_dir)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="alad", description="Alignment Adapters for compressed encoders")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=None, help="dataset root (default: $ALAD_DATA_DIR)")
    common.add_argument("--cache-dir", default=None, help="model/embedding cache root")

    s = sub.add_parser("info", parents=[common], help="versions, device, offline models, datasets")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=_info)

    s = sub.add_parser("run", parents=[common], help="phases 1-3 for one task/student/mode/window")
    s.add_argument("--task", required=True, choices=["pos", "ner", "qa"])
    s.add_argument("--teacher", default="mpnet-base")
    s.add_argument("--student", default="minilm-l6")
    s.add_argument("--student-layers", type=_layers, default=None, help="keep only these student layers, e.g. 0,1")
    s.add_argument("--mode", default="frozen", choices=["finetune", "head", "frozen", "joint", "lora", "lora+alad"])
    s.add_argument("--window", type=int, default=5)
    s.add_argument("--scale", default=os.environ.get("ALAD_SCALE", "smoke"), choices=["smoke", "cpu", "full"])
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="runs/latest")
    s.add_argument("--resume", action="store_true", help="continue a killed run from its checkpoints")
    s.add_argument("--lr", type=float, default=None, help="phase-3 learning rate of every trained part")
    s.add_argument("--head-lr", type=float, default=None, help="phase-3 lr of the task head (default: 2e-3)")
    s.add_argument("--adapter-lr", type=float, default=None, help="phase-3 lr of the adapter (default: paper's)")
    s.add_argument("--student-lr", type=float, default=None, help="phase-3 lr of a fine-tuned M_C (default: 5e-5)")
    s.add_argument("--lora-lr", type=float, default=None, help="phase-3 lr of the LoRA weights (default: 1e-4)")
    s.add_argument("--precision", default=None, choices=["fp32", "bf16"],
                   help="compute precision (default: the scale's: fp32 smoke, bf16 cpu/full where supported)")
    s.add_argument("--teacher-finetuned", default=None, help="task-fine-tuned M_L dir used as phase 1-2 teacher")
    s.add_argument("--teacher-baseline", action="store_true", help="fine-tune the teacher itself (mode finetune)")
    s.add_argument("--skip-phase1", action="store_true")
    s.add_argument("--skip-phase2", action="store_true")
    s.add_argument("--random-adapter", action="store_true", help="ablation: untrained adapter, no phases 1-2")
    s.add_argument("--no-cache", action="store_true", help="recompute encoder outputs every step (timing)")
    s.add_argument("--device", default=None)
    s.add_argument("--strict", action="store_true", help="refuse NER data whose BIO tags need repair")
    s.set_defaults(fn=_run)

    s = sub.add_parser("demo", parents=[common], help="end-to-end ALAd on the embedded offline default")
    s.add_argument("--out", default="runs/demo")
    s.add_argument("--scale", default="cpu", choices=["smoke", "cpu", "full"])
    s.set_defaults(fn=_demo)

    s = sub.add_parser("compress", help="make a compressed student (asc, keep-layers, l1, dynamic-int8, ...)")
    s.add_argument("method")
    s.add_argument("--model", default="minilm-l6")
    s.add_argument("--out", required=True)
    s.add_argument("--options", default=None, help='JSON of method options, e.g. \'{"threshold": 0.9}\'')
    s.set_defaults(fn=_compress)

    s = sub.add_parser("bench", help="size/latency/FLOPs of teacher, students and adapters (JSON)")
    s.add_argument("--teacher", default="mpnet-base")
    s.add_argument("--students", nargs="+", default=["minilm-l6"])
    s.add_argument("--windows", nargs="+", type=int, default=[1, 3, 5])
    s.add_argument("--kinds", nargs="+", default=["dense"], choices=list(ADAPTER_KINDS), help="adapter kinds")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--seq-len", type=int, default=128)
    s.add_argument("--repeats", type=int, default=10)
    s.add_argument("--device", default=None)
    s.add_argument("--out", default="bench.json")
    s.add_argument("--training", action="store_true",
                   help="training steps/s instead: fp32 vs bf16, cached vs live frozen student (first student)")
    s.set_defaults(fn=_bench)

    s = sub.add_parser("table", help="collect metrics.json files into the paper's Table 1 layout")
    s.add_argument("runs_dir")
    s.add_argument("--out", default=None)
    s.add_argument("--bench", default=None, help="alad bench JSON that fills the Spd column")
    s.add_argument("--sweep", default=None, choices=["head", "adapter", "student", "lora"],
                   help="a learning-rate sweep of this part instead: one row per run (sweep_<part>.md)")
    s.add_argument("--compression", action="store_true",
                   help="one row per student: head-only vs frozen ALAd, size, speed, FLOPs (compression.md)")
    s.add_argument("--task", default="ner", choices=["pos", "ner", "qa"], help="task of --compression")
    s.add_argument("--window", type=int, default=5, help="ALAd window of --compression")
    s.add_argument("--reports", default=None,
                   help="JSON {student dir name: compression_report} for students whose directories are gone")
    s.set_defaults(fn=_table)

    s = sub.add_parser("study", parents=[common], help="the claims study: every row x seed, claims.md/json, table")
    s.add_argument("--task", required=True, choices=["pos", "ner", "qa"])
    s.add_argument("--teacher", default="mpnet-base")
    s.add_argument("--student", default="minilm-l6")
    s.add_argument("--student-layers", type=_layers, default=None, help="keep only these student layers, e.g. 0,1")
    s.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    s.add_argument("--scale", default=os.environ.get("ALAD_SCALE", "smoke"), choices=["smoke", "cpu", "full"])
    s.add_argument("--out", required=True, help="study directory: <row>/seed<k>/ runs, claims, table")
    s.add_argument("--rows", nargs="+", default=None, help="only these rows (default: all; see alad_kit.study.ROWS)")
    s.add_argument("--bench", default=None, help="alad bench JSON: Spd column and the speed part of C9")
    s.add_argument("--device", default=None)
    s.set_defaults(fn=_study)

    s = sub.add_parser("report", help="one self-contained HTML page of a run's figures")
    s.add_argument("run_dir")
    s.set_defaults(fn=_report)
    _add_verbose(p, sub)
    return p


def _add_verbose(parser: argparse.ArgumentParser, sub) -> None:
    """``-v`` before or after the command (``alad -v run`` and ``alad run -v``) shows an error's traceback."""
    parser.add_argument("-v", "--verbose", action="store_true", help="show the traceback of an error")
    for command in sub.choices.values():  # SUPPRESS: a command's unset flag must not undo ``alad -v``
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="show the traceback of an error")


def _one_line(error: BaseException) -> str:
    """The error as one line. Our own errors (ValueError, OSError, ...) carry their cause and file; anything
    else (a KeyError, an IndexError deep in a library) also gets its type, which is then half the message."""
    text = " ".join(str(error).split())
    if isinstance(error, EXPECTED) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# Failures with a message meant for the user (bad input, missing file, full disk, failed checks).
EXPECTED = (ValueError, OSError, ImportError, FloatingPointError, RuntimeError)


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure is exit code 2 and one line on stderr (``-v``: and the traceback)."""
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        print(f"alad {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the catch-all: no traceback reaches a user who did not ask for one
        if args.verbose:
            traceback.print_exc()
        print(f"alad {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
