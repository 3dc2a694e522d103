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

from alad_kit.adapter import AlignmentAdapter
from alad_kit.core.config import ADAPTER_PRECISIONS
from alad_kit.core.io import (
    atomic_dir,
    atomic_path,
    chmod_as_umask,
    remove_dir,
    write_json_atomic,
    write_text_atomic,
)

from . import folder_checks as checks
from .adapter_precision import adapter_in
from .cost import packed_params
from .folder_checks import CONFIG_NAME, HEAD_NAME, LORA_DIR, STUDENT_DIR
from .heads import SpanHead
from .zoo import _no_weight_loading_bar, local_path

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
        no_labels = TASKS.get(self.task).label_field is None  # a task without a label set (QA) has no labels
        if no_labels != (self.labels is None):
            raise ValueError(f"DeployConfig: task {self.task} {'takes no' if no_labels else 'needs'} labels")
        if self.adapter_precision not in ADAPTER_PRECISIONS:
            raise ValueError(f"DeployConfig: adapter_precision must be one of {ADAPTER_PRECISIONS}, "
                             f"got {self.adapter_precision!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"DeployConfig: precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("max_length", "eval_batch_size", "window", "doc_stride", "test_examples", "data_seed"):
            value = getattr(self, name)
            optional = name in ("window", "doc_stride", "test_examples")
            if not (value is None and optional) and not (_is_int(value) and value >= (0 if name == "data_seed" else 1)):
                raise ValueError(f"DeployConfig: {name} must be a {'non-negative' if name == 'data_seed' else 'positive'}"
                                 f" integer{' or null' if optional else ''}, got {value!r}")
        if self.window is not None and self.window % 2 == 0:
            raise ValueError(f"DeployConfig: window must be odd and >= 1, got {self.window}")
        self._check_against_each_other()

    def _check_against_each_other(self) -> None:
        """Fields that only make sense together: the mode's adapter and LoRA, the task's labels and windows."""
        from alad_kit.core.config import MODES, TASKS

        mode = MODES[self.mode]
        if (self.window is not None) != mode.use_adapter:
            raise ValueError(f"DeployConfig: mode {self.mode} {'needs an adapter window' if mode.use_adapter else 'has no adapter'}"
                             f", got window {self.window!r}")
        if self.lora is not ("lora" in mode.trainable):
            raise ValueError(f"DeployConfig: lora {self.lora!r} does not fit mode {self.mode}")
        spec = TASKS.get(self.task)
        if spec.pairs and (self.doc_stride is None or self.doc_stride >= self.max_length):
            raise ValueError(f"DeployConfig: a {spec.title} model needs doc_stride below max_length {self.max_length}, "
                             f"got {self.doc_stride!r}")
        if self.student_layers is not None and (not self.student_layers or len(set(self.student_layers)) != len(
                self.student_layers) or not all(_is_int(i) and i >= 0 for i in self.student_layers)):
            raise ValueError(f"DeployConfig: student_layers must be distinct layer indices, got {self.student_layers}")
        if self.labels is not None:
            _check_labels(self.task, self.labels)

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
            if isinstance(kept.get(key), list):
                kept[key] = tuple(kept[key])
        try:
            config = cls(**kept)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: {err}") from err
        written = config.to_json()  # the label maps are written from labels: any other map is a different model
        for key in ("id2label", "label2id"):
            if key in data and data[key] != json.loads(json.dumps(written.get(key))):
                raise ValueError(f"{source}: {key} does not match labels {list(config.labels or [])}")
        return config


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_labels(task: str, labels: tuple) -> None:
    """Distinct non-empty names, then the task's own check (``Task.check_labels``: NER's BIO scheme)."""
    from alad_kit.core.config import TASKS

    if not isinstance(labels, tuple) or not labels or not all(isinstance(label, str) and label for label in labels):
        raise ValueError(f"DeployConfig: labels must be non-empty strings, got {list(labels)}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"DeployConfig: labels repeat: {sorted({x for x in labels if labels.count(x) > 1})}")
    TASKS.get(task).check_labels(labels)


# --------------------------------------------------------------------------------------------------
def deploy_config_for_run(cfg, scale, labels, metrics: dict, int8_student: bool = False) -> DeployConfig:
    """What ``alad run`` knows about the model it trained (``cfg`` a RunConfig, ``scale`` its ScaleConfig).
    The adapter of an int8 student is deployed in int8 too (its run's scores are the float adapter's)."""
    from alad_kit.core.config import MODES, TASKS
    from alad_kit.core.io import __version__

    spec = TASKS.get(cfg.task)
    student = cfg.teacher if cfg.is_teacher_run else cfg.student
    return DeployConfig(
        task=cfg.task, labels=tuple(labels) if spec.label_field else None, teacher=cfg.teacher, student=student, mode=cfg.mode,
        window=cfg.window if cfg.uses_adapter else None,
        max_length=spec.max_length(scale), doc_stride=spec.doc_stride(scale),
        eval_batch_size=scale.eval_batch_size,
        precision=metrics.get("precision") or getattr(cfg, "precision", None) or "fp32",  # as the run resolved it
        adapter_precision="int8" if int8_student and cfg.uses_adapter else "fp32",
        test_examples=scale.test_examples, student_layers=tuple(cfg.student_layers) if cfg.student_layers else None,
        lora="lora" in MODES[cfg.mode].trainable, alad_kit_version=__version__,
        run={"scores": metrics.get("scores"), "params": metrics.get("params"), "size_pct": metrics.get("size_pct"),
             "data": metrics.get("data"), "data_dir": cfg.data_dir, "scale": cfg.scale, "seed": cfg.seed,
             "teacher_layer": (metrics.get("ablation") or {}).get("teacher_layer"),  # None: the last (the paper's)
             "command": run_command(cfg)},
    )


def run_command(cfg) -> str:
    """The ``alad run`` command line that gives back ``cfg`` (a RunConfig): every field off its default, generated
    from the dataclass (core.config_args), so no field can be forgotten; task and scale always."""
    import shlex

    from alad_kit.core.config import RUN_DEFAULTS, RUN_FLAGS
    from alad_kit.core.config_args import command_args

    args = command_args(cfg, flags=RUN_FLAGS, defaults=RUN_DEFAULTS, always=("task", "scale"))
    return shlex.join(["alad", "run", *args])


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
        written, base = [student], encoder
        if lora:
            written.append(staged.enter_context(atomic_dir(directory / LORA_DIR)))
            encoder.save_pretrained(written[-1])  # peft's adapter folder
            base = copy.deepcopy(encoder).unload()  # the base weights without LoRA, the live model untouched
        if packed_params(base) > 0:  # torch.ao int8: the packed weights go to safetensors as int8 + scales
            from .quant_safetensors import save_quantized_student

            save_quantized_student(base, student)
        else:
            base.save_pretrained(student)
        tokenizer.save_pretrained(student)
        chmod_as_umask(*written)  # safetensors writes 0600: the files get the modes a plain open would give
    if not lora:  # a LoRA folder of an earlier save would be read as this model's
        remove_dir(directory / LORA_DIR)


# --------------------------------------------------------------------------------------------------
def resolve_folder(name_or_id: str | os.PathLike, **hub_kwargs) -> Path:
    """A local model folder, or the hub repo ``name_or_id`` downloaded into the hub cache. A name that is a path
    (see ``zoo.local_path``) is never sent to the hub."""
    local = local_path(name_or_id)
    if local is not None:
        return local
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
    ``adapter_precision`` overrides the folder's (fp32 gives back exactly the adapter the run evaluated).
    The folder loads whole or not at all, and never runs code (``folder_checks``: refused before any weight is
    read, with one line naming the file)."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    folder = resolve_folder(model_id, **hub_kwargs)
    config = read_config(folder)  # JSON only; first, so that a folder that is no model folder is named as such
    checks.refuse_code(folder)
    checks.check_folder(folder, config)
    student_dir = folder / STUDENT_DIR
    encoder = _load_student(student_dir)
    if config.lora:
        encoder = _load_lora(encoder, folder / LORA_DIR, merge_lora)
    adapter = AlignmentAdapter.from_pretrained(folder) if config.window is not None else None
    dim = adapter.config.teacher_dim if adapter is not None else encoder.config.hidden_size
    head = checks.task_head(config.task, dim, config.labels)
    head.load_state_dict(load_file(str(folder / HEAD_NAME)))  # names and shapes checked by check_folder
    if adapter is not None:
        adapter = adapter_in(adapter, adapter_precision or config.adapter_precision)
    model = model_cls(encoder, adapter, head)
    tokenizer = AutoTokenizer.from_pretrained(student_dir, local_files_only=True, trust_remote_code=False)
    checks.check_tokenizer_fits(tokenizer, student_dir, encoder.config.vocab_size)
    attach(model, tokenizer, config)
    return model.to(device).eval()


def _load_student(student_dir: Path) -> nn.Module:
    """The student exactly as saved: refused when transformers reports a key missing, unexpected or resized."""
    from transformers import AutoModel

    from .quant_safetensors import is_quantized_student, load_quantized_student

    if is_quantized_student(student_dir):
        return load_quantized_student(student_dir)
    with _no_weight_loading_bar(True):
        encoder, info = AutoModel.from_pretrained(student_dir, local_files_only=True, trust_remote_code=False,
                                                  output_loading_info=True)
    checks.check_loading_info(student_dir / checks.STUDENT_WEIGHTS, info)
    return encoder


def _load_lora(encoder: nn.Module, lora_dir: Path, merge: bool) -> nn.Module:
    """peft's LoRA folder on ``encoder``, whole (peft itself skips missing and unexpected keys)."""
    from peft import PeftModel

    try:
        with warnings.catch_warnings():  # check_lora_loaded below names the file and the key instead
            warnings.filterwarnings("ignore", message="Found missing adapter keys")
            # peft asks transformers 5 a deprecated question on every load: library noise, not the user's business
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)
            encoder = PeftModel.from_pretrained(encoder, lora_dir)
    except RuntimeError as err:  # torch's size mismatch, raised inside peft without the file name
        raise ValueError(f"{lora_dir / checks.LORA_WEIGHTS}: {' '.join(str(err).split())}") from None
    checks.check_lora_loaded(encoder, lora_dir)
    return encoder.merge_and_unload() if merge else encoder


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
