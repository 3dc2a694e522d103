"""The deployable ALAd model: one folder that loads in one line, goes to the hub, and runs on raw text.

``AladModel.save_pretrained(dir)`` (huggingface_hub's ``ModelHubMixin``, so ``push_to_hub`` works too) writes

    config.json                         task, id2label, teacher/student names, window, precision, alad_kit version
    README.md                           model card: the run's scores, sizes, data and command
    student/                            M_C in transformers format (config, model.safetensors) + its tokenizer;
                                        an int8 student as int8 values + scales (alad_kit.models.quant_safetensors)
    lora/                               peft's own LoRA folder, when the student was trained with LoRA
    alad_adapter_config.json, alad_adapter.safetensors    the alignment adapter (modes with ALAd)
    head.safetensors                    the task head

Only safetensors and JSON: loading the folder never executes code. LoRA is kept unmerged (saved through
peft) so the reloaded model computes exactly what the run evaluated; ``merge_lora=True`` merges it on load.
``AladModel.from_pretrained(dir_or_hub_id)`` reads it back; every ``alad run`` writes ``OUT/model/``.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from contextlib import ExitStack
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import nn

from alad_kit.adapter import CONFIG_NAME as ADAPTER_CONFIG
from alad_kit.adapter import AlignmentAdapter
from alad_kit.core.config import ADAPTER_PRECISIONS
from alad_kit.core.io import atomic_dir, atomic_path, remove_dir, write_json_atomic, write_text_atomic

from .adapter_precision import adapter_in
from .cost import packed_params
from .heads import SpanHead, TokenClassificationHead
from .zoo import _looks_like_path, _no_weight_loading_bar

CONFIG_NAME = "config.json"
HEAD_NAME = "head.safetensors"
STUDENT_DIR, LORA_DIR = "student", "lora"
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class DeployConfig:
    task: str  # pos | ner | qa
    labels: tuple[str, ...] | None  # id2label in head-output order (None for QA)
    teacher: str  # M_L the adapter imitates (name as given to alad run)
    student: str  # M_C (name as given to alad run)
    mode: str  # phase-3 mode (finetune, head, frozen, joint, lora, lora+alad)
    window: int | None  # adapter window n; None without adapter
    max_length: int  # tokens per sequence in training and evaluation (QA: per window)
    doc_stride: int | None  # QA: tokens shared by consecutive windows of a long context
    eval_batch_size: int  # batch size of the run's evaluation (same padding -> bit-equal logits)
    precision: str = "fp32"  # evaluation precision of the run: fp32 | bf16 (autocast)
    adapter_precision: str = "fp32"  # the deployed adapter: fp32 | int8 (follows an int8 student) | bf16
    test_examples: int | None = None  # the run's test subsample size (None: whole split), see data.task_data.subsample
    data_seed: int = 0  # shuffle seed of that subsample
    student_layers: tuple[int, ...] | None = None  # encoder layers the student kept
    lora: bool = False  # the student carries a peft LoRA (folder lora/)
    alad_kit_version: str = ""  # version that wrote the folder
    run: dict = field(default_factory=dict, compare=False)  # scores, sizes, data, command (for the model card)

    def __post_init__(self):
        from alad_kit.core.config import MODES, TASKS

        if self.task not in TASKS:
            raise ValueError(f"DeployConfig: unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.mode not in MODES:
            raise ValueError(f"DeployConfig: unknown mode {self.mode!r}")
        if (self.task == "qa") != (self.labels is None):
            raise ValueError(f"DeployConfig: task {self.task} {'takes no' if self.task == 'qa' else 'needs'} labels")
        if self.adapter_precision not in ADAPTER_PRECISIONS:
            raise ValueError(f"DeployConfig: adapter_precision must be one of {ADAPTER_PRECISIONS}, "
                             f"got {self.adapter_precision!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"DeployConfig: precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.window is not None and (self.window < 1 or self.window % 2 == 0):
            raise ValueError(f"DeployConfig: window must be odd and >= 1, got {self.window}")
        if self.max_length < 1 or self.eval_batch_size < 1:
            raise ValueError("DeployConfig: max_length and eval_batch_size must be positive")

    def to_json(self) -> dict:
        data = asdict(self)
        extra = {} if self.labels is None else {
            "id2label": dict(enumerate(self.labels)), "label2id": {label: i for i, label in enumerate(self.labels)}}
        return {"library_name": "alad_kit", **data, **extra}

    @classmethod
    def from_json(cls, data: dict, source: Path | str) -> DeployConfig:
        names = {f.name for f in fields(cls)}
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(f"{source}: not an alad_kit model config (missing {', '.join(missing)})")
        kept = {k: v for k, v in data.items() if k in names}
        for key in ("labels", "student_layers"):
            if kept.get(key) is not None:
                kept[key] = tuple(kept[key])
        try:
            return cls(**kept)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: {err}") from err


# --------------------------------------------------------------------------------------------------
def deploy_config_for_run(cfg, scale, labels, metrics: dict, int8_student: bool = False) -> DeployConfig:
    """What ``alad run`` knows about the model it trained (``cfg`` a RunConfig, ``scale`` its ScaleConfig).
    The adapter of an int8 student is deployed in int8 too (its run's scores are the float adapter's)."""
    from alad_kit.core.config import MODES
    from alad_kit.core.io import __version__

    qa = cfg.task == "qa"
    student = cfg.teacher if cfg.is_teacher_run else cfg.student
    return DeployConfig(
        task=cfg.task, labels=None if qa else tuple(labels), teacher=cfg.teacher, student=student, mode=cfg.mode,
        window=cfg.window if cfg.uses_adapter else None,
        max_length=scale.qa_max_length if qa else scale.max_length, doc_stride=scale.qa_doc_stride if qa else None,
        eval_batch_size=scale.eval_batch_size,
        precision=metrics.get("precision") or getattr(cfg, "precision", None) or "fp32",  # as the run resolved it
        adapter_precision="int8" if int8_student and cfg.uses_adapter else "fp32",
        test_examples=scale.test_examples, student_layers=tuple(cfg.student_layers) if cfg.student_layers else None,
        lora="lora" in MODES[cfg.mode].trainable, alad_kit_version=__version__,
        run={"scores": metrics.get("scores"), "params": metrics.get("params"), "size_pct": metrics.get("size_pct"),
             "data": metrics.get("data"), "data_dir": cfg.data_dir, "scale": cfg.scale, "seed": cfg.seed,
             "command": run_command(cfg)},
    )


def run_command(cfg) -> str:
    """The ``alad run`` command line that reproduces ``cfg`` (options at their defaults left out)."""
    from alad_kit.core.config import RunConfig

    defaults = RunConfig(task=cfg.task, teacher="mpnet-base", student="minilm-l6")
    parts = ["alad run", f"--task {cfg.task}"]
    for name in ("teacher", "student", "mode", "window", "scale", "seed", "data_dir", "lr", "teacher_finetuned"):
        value = getattr(cfg, name)
        if value != getattr(defaults, name) or name == "scale":
            parts.append(f"--{name.replace('_', '-')} {value}")
    if cfg.student_layers:
        parts.append("--student-layers " + ",".join(map(str, cfg.student_layers)))
    if getattr(cfg, "precision", None):  # RunConfig.precision: fp32 | bf16 (None: the scale's default)
        parts.append(f"--precision {cfg.precision}")
    flags = {"skip_phase1": "--skip-phase1", "skip_phase2": "--skip-phase2", "random_adapter": "--random-adapter",
             "is_teacher_run": "--teacher-baseline"}
    parts += [flag for name, flag in flags.items() if getattr(cfg, name)]
    return " ".join(parts)


def attach(model: nn.Module, tokenizer, config: DeployConfig) -> nn.Module:
    """Give ``model`` what ``save_pretrained`` writes besides the weights."""
    model.deploy_config, model.tokenizer = config, tokenizer
    return model


def deployable(model: nn.Module) -> str | None:
    """Why ``model`` cannot be saved as safetensors, or None when it can."""
    if packed_params(model.encoder) > 0 and hasattr(model.encoder, "peft_config"):
        return "its student is both int8-quantized and LoRA-wrapped"
    if model.head is None:
        return "it has no task head"
    if model.adapter is not None and not isinstance(model.adapter, AlignmentAdapter):
        return "its adapter runs in int8/bf16; save the folder loaded with adapter_precision='fp32'"
    return None


def save_run_model(directory: Path, model: nn.Module, labels, tokenizer, cfg, metrics: dict) -> Path | None:
    """The hook at the end of ``alad run``: write the deployable model to ``directory`` (all or nothing)."""
    from alad_kit.core.config import scale_config

    reason = deployable(model)
    if reason is not None:
        warnings.warn(f"{directory} not written: {reason}", stacklevel=2)
        return None
    int8 = packed_params(model.encoder) > 0
    attach(model, tokenizer, deploy_config_for_run(cfg, scale_config(cfg.scale), labels, metrics, int8))
    with atomic_dir(directory) as staging:  # the old model/ stays whole until the new one takes its place
        model.save_pretrained(staging)
    return directory


# --------------------------------------------------------------------------------------------------
def save_folder(model: nn.Module, directory: str | Path) -> None:
    """``AladModel._save_pretrained``: every file via a temporary name, then renamed into place."""
    from safetensors.torch import save_file

    config: DeployConfig | None = model.deploy_config
    if config is None or model.tokenizer is None:
        raise ValueError("AladModel.save_pretrained needs model.deploy_config and model.tokenizer; "
                         "set them with alad_kit.models.deploy.attach(model, tokenizer, DeployConfig(...))")
    reason = deployable(model)
    if reason is not None:
        raise ValueError(f"cannot save this AladModel: {reason}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with _no_weight_loading_bar(True):
        _save_student(model.encoder, model.tokenizer, directory, config.lora)
    if model.adapter is not None:
        model.adapter.save_pretrained(directory)
    head = {k: v.detach().contiguous().cpu() for k, v in model.head.state_dict().items()}
    with atomic_path(directory / HEAD_NAME) as tmp:
        save_file(head, str(tmp), metadata={"format": "pt"})
    write_json_atomic(directory / CONFIG_NAME, config.to_json())
    from .model_card import model_card

    write_text_atomic(directory / "README.md", model_card(config))


def _save_student(encoder, tokenizer, directory: Path, lora: bool) -> None:
    """The student in transformers format; with LoRA the base weights and peft's adapter folder apart."""
    with ExitStack() as staged:  # both folders are written before either replaces its old copy
        student = staged.enter_context(atomic_dir(directory / STUDENT_DIR))
        base = encoder
        if lora:
            encoder.save_pretrained(staged.enter_context(atomic_dir(directory / LORA_DIR)))  # peft's adapter folder
            base = copy.deepcopy(encoder).unload()  # the base weights without LoRA, the live model untouched
        if packed_params(base) > 0:  # torch.ao int8: the packed weights go to safetensors as int8 + scales
            from .quant_safetensors import save_quantized_student

            save_quantized_student(base, student)
        else:
            base.save_pretrained(student)
        tokenizer.save_pretrained(student)
    if not lora:  # a LoRA folder of an earlier save would be read as this model's
        remove_dir(directory / LORA_DIR)


# --------------------------------------------------------------------------------------------------
def resolve_folder(name_or_id: str | os.PathLike, **hub_kwargs) -> Path:
    """A local model folder, or the hub repo ``name_or_id`` downloaded into the hub cache."""
    local = Path(name_or_id).expanduser()
    if local.is_dir():
        return local
    if _looks_like_path(str(name_or_id)):
        raise FileNotFoundError(f"no model folder at {name_or_id} (and it is not a hub id)")
    from huggingface_hub import snapshot_download

    keep = ("revision", "cache_dir", "force_download", "local_files_only", "token")
    return Path(snapshot_download(repo_id=str(name_or_id), **{k: v for k, v in hub_kwargs.items() if k in keep}))


def read_config(folder: Path) -> DeployConfig:
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no {CONFIG_NAME} (not an alad_kit model folder)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    return DeployConfig.from_json(data, path)


def load_folder(model_id: str | os.PathLike, model_cls: type[nn.Module], device: str | torch.device = "cpu",
                merge_lora: bool = False, adapter_precision: str | None = None, **hub_kwargs) -> nn.Module:
    """``AladModel._from_pretrained``: rebuild the ``model_cls`` (AladModel) of a folder (or hub id) in eval mode
    on ``device``; this module never imports the model class, whose methods call it;
    ``adapter_precision`` overrides the folder's (fp32 gives back exactly the adapter the run evaluated)."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    folder = resolve_folder(model_id, **hub_kwargs)
    config = read_config(folder)
    student_dir = folder / STUDENT_DIR
    if not (student_dir / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: missing {STUDENT_DIR}/config.json")
    from .quant_safetensors import is_quantized_student, load_quantized_student

    if is_quantized_student(student_dir):
        encoder = load_quantized_student(student_dir)
    else:
        with _no_weight_loading_bar(True):
            encoder = AutoModel.from_pretrained(student_dir, local_files_only=True)
    if config.lora:
        from peft import PeftModel

        encoder = PeftModel.from_pretrained(encoder, folder / LORA_DIR)
        encoder = encoder.merge_and_unload() if merge_lora else encoder
    adapter = AlignmentAdapter.from_pretrained(folder) if (folder / ADAPTER_CONFIG).is_file() or config.window else None
    head_path = folder / HEAD_NAME
    if not head_path.is_file():
        raise FileNotFoundError(f"{folder}: missing {HEAD_NAME}")
    state = load_file(str(head_path))
    dim = adapter.config.teacher_dim if adapter is not None else encoder.config.hidden_size
    head = SpanHead(dim) if config.task == "qa" else TokenClassificationHead(dim, len(config.labels))
    try:
        head.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{head_path} does not fit a {config.task} head of width {dim}: {err}") from err
    if adapter is not None:
        adapter = adapter_in(adapter, adapter_precision or config.adapter_precision)
    model = model_cls(encoder, adapter, head)
    attach(model, AutoTokenizer.from_pretrained(student_dir, local_files_only=True), config)
    return model.to(device).eval()


def model_output(model: nn.Module, inputs: dict):
    """transformers' output classes: ``.logits`` (POS/NER) or ``.start_logits`` / ``.end_logits`` (QA)."""
    from transformers.modeling_outputs import (
        BaseModelOutput,
        QuestionAnsweringModelOutput,
        TokenClassifierOutput,
    )

    if "attention_mask" not in inputs:  # the adapter needs it to keep padding out of its windows
        inputs = {**inputs, "attention_mask": torch.ones_like(inputs["input_ids"])}
    if model.head is None:
        return BaseModelOutput(last_hidden_state=model.embed(inputs))
    logits = model.forward(inputs)
    if isinstance(model.head, SpanHead):
        start, end = logits.unbind(-1)
        return QuestionAnsweringModelOutput(start_logits=start.contiguous(), end_logits=end.contiguous())
    return TokenClassifierOutput(logits=logits)
