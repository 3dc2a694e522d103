"""The ``alad`` command: info, run, demo, compress, bench, table, report, predict, evaluate, export."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


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

    result = run_bench(teacher=args.teacher, students=args.students, windows=tuple(args.windows),
                       batch_size=args.batch_size, seq_len=args.seq_len, repeats=args.repeats, out=args.out,
                       device=args.device, adapter_precision=args.adapter_precision)
    print(json.dumps(result.get("summary", result), indent=2, default=str))
    return 0


def _table(args) -> int:
    if args.compression:
        from .compression_table import write_compression_table

        paths = write_compression_table(args.runs_dir, args.out, task=args.task, window=args.window,
                                        bench=args.bench, reports=args.reports)
    else:
        from .table import write_table

        paths = write_table(args.runs_dir, args.out, bench=args.bench)
    print(Path(paths["md"]).read_text() if "md" in paths else "")
    print("\n".join(f"wrote {p}" for p in paths.values()))
    return 0


def _report(args) -> int:
    from .report import write_report

    print(f"wrote {write_report(args.run_dir)}")
    return 0


def _predict(args) -> int:
    from .pipeline import AladPipeline

    pipe = AladPipeline(args.model, device=args.device or "cpu")
    if pipe.config.task == "qa":
        if args.question is None or args.context is None or args.texts or args.file:
            raise ValueError(f"{args.model} is a QA model: give --question and --context (no texts)")
        print(json.dumps(pipe(question=args.question, context=args.context), ensure_ascii=False))
        return 0
    texts = list(args.texts)
    if args.file:
        texts += [line.rstrip("\n") for line in Path(args.file).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise ValueError("nothing to tag: give one or more texts or --file FILE (one text per line)")
    for row in pipe(texts):
        print(json.dumps(row, ensure_ascii=False))
    return 0


def _evaluate(args) -> int:
    from .evaluation import evaluate_model
    from .run import write_json_atomic

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
    from .export import check_onnx, export_onnx
    from .model import AladModel

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
    s.add_argument("--adapter-precision", default=None, choices=["fp32", "int8", "bf16"],
                   help="run the adapter in this precision (default: the folder's; int8 students: int8)")
    s.add_argument("--device", default=None)
    s.set_defaults(fn=_evaluate)

    s = sub.add_parser("export", help="export a deployed model (ONNX), check parity and latency")
    s.add_argument("model")
    s.add_argument("--format", default="onnx", choices=["onnx"])
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_export)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alad", description="Alignment Adapters for compressed encoders")
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
    s.add_argument("--lr", type=float, default=None, help="phase-3 learning rate (default: the mode's paper value)")
    s.add_argument("--teacher-finetuned", default=None, help="task-fine-tuned M_L dir used as phase 1-2 teacher")
    s.add_argument("--teacher-baseline", action="store_true", help="fine-tune the teacher itself (mode finetune)")
    s.add_argument("--skip-phase1", action="store_true")
    s.add_argument("--skip-phase2", action="store_true")
    s.add_argument("--random-adapter", action="store_true", help="ablation: untrained adapter, no phases 1-2")
    s.add_argument("--no-cache", action="store_true", help="recompute encoder outputs every step (timing)")
    s.add_argument("--device", default=None)
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
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--seq-len", type=int, default=128)
    s.add_argument("--repeats", type=int, default=10)
    s.add_argument("--device", default=None)
    s.add_argument("--out", default="bench.json")
    s.add_argument("--adapter-precision", default="fp32", choices=["fp32", "int8", "bf16", "follow"],
                   help="precision the adapters are timed in; follow: int8 next to an int8 student (as deployed)")
    s.set_defaults(fn=_bench)

    s = sub.add_parser("table", help="collect metrics.json files into the paper's Table 1 layout")
    s.add_argument("runs_dir")
    s.add_argument("--out", default=None)
    s.add_argument("--bench", default=None, help="alad bench JSON that fills the Spd column")
    s.add_argument("--compression", action="store_true",
                   help="one row per student: head-only vs frozen ALAd, size, speed, FLOPs (compression.md)")
    s.add_argument("--task", default="ner", choices=["pos", "ner", "qa"], help="task of --compression")
    s.add_argument("--window", type=int, default=5, help="ALAd window of --compression")
    s.add_argument("--reports", default=None,
                   help="JSON {student dir name: compression_report} for students whose directories are gone")
    s.set_defaults(fn=_table)

    s = sub.add_parser("report", help="one self-contained HTML page of a run's figures")
    s.add_argument("run_dir")
    s.set_defaults(fn=_report)
    _deploy_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, OSError, ImportError, FloatingPointError, RuntimeError) as e:
        print(f"alad {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
