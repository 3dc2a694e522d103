"""What gets deployed: compressed encoder M_C [+ LoRA] [+ alignment adapter] + task head.

``AladModel.embed`` is the whole pipeline up to the head:

    R_C = M_C(text)                      (B, T, D_C)   - skipped when phases 1-2 feed cached R_C
    R   = ALAd(R_C)  or  R_C             (B, T, D_L) or (B, T, D_C)
    out = head(R)                        token logits (B, T, labels) or span logits (B, T, 2)
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from huggingface_hub import ModelHubMixin
from torch import nn

from alad_kit.adapter import AlignmentAdapter

from .cost import packed_params

ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class AladModel(nn.Module, ModelHubMixin, library_name="alad_kit", tags=["alad", "alignment-adapter"]):
    """``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` (huggingface_hub's mixin) are in
    :mod:`alad_kit.models.deploy`; saving needs ``deploy_config`` and ``tokenizer`` (set by ``deploy.attach``)."""

    deploy_config = None  # alad_kit.models.deploy.DeployConfig: task, labels, names, window ... saved with the weights
    tokenizer = None  # the student's tokenizer, saved with the model

    def __init__(self, encoder: nn.Module, adapter: AlignmentAdapter | None = None, head: nn.Module | None = None):
        super().__init__()
        self.encoder, self.adapter, self.head = encoder, adapter, head
        self._encoder_keys = self._accepted_inputs(encoder)

    @staticmethod
    def _accepted_inputs(encoder) -> tuple[str, ...]:
        # MPNet has no token_type_ids; BERT does. Feed only what the encoder's forward takes.
        import inspect

        base = getattr(encoder, "get_base_model", lambda: encoder)()
        params = inspect.signature(base.forward).parameters
        return tuple(k for k in ENCODER_INPUTS if k in params)

    def train(self, mode: bool = True):
        """A frozen encoder stays in eval mode (no dropout): it is deployed as it is, and phases 1-2 aligned
        the adapter to its dropout-free outputs."""
        super().train(mode)
        if mode and not self.encoder_trainable:
            self.encoder.eval()
        return self

    @property
    def encoder_trainable(self) -> bool:
        return any(p.requires_grad for p in self.encoder.parameters())

    def embed(self, batch: dict) -> torch.Tensor:
        if "student_hidden" in batch:  # phases 1-2 with cached M_C outputs
            hidden = batch["student_hidden"]
        else:
            inputs = {k: batch[k] for k in self._encoder_keys if k in batch}
            with nullcontext() if self.encoder_trainable else torch.no_grad():
                hidden = self.encoder(**inputs).last_hidden_state  # (B, T) -> (B, T, D_C)
        if self.adapter is not None:
            hidden = self.adapter(hidden.float(), batch["attention_mask"])  # (B, T, D_C) -> (B, T, D_L)
        return hidden

    def forward(self, batch: dict | None = None, use_head: bool = True, **inputs):
        if batch is None:  # transformers-style call model(input_ids=..., attention_mask=...) -> a ModelOutput
            from .deploy import model_output

            return model_output(self, inputs)
        # Training goes through forward (not embed) so DistributedDataParallel sees every step.
        hidden = self.embed(batch)
        if not use_head:
            return hidden
        if self.head is None:
            raise ValueError("AladModel has no task head; call it with use_head=False for alignment")
        return self.head(hidden, batch.get("attention_mask"))  # the mask lets a sentence-level head pool

    def _save_pretrained(self, save_directory) -> None:
        from .deploy import save_folder

        save_folder(self, save_directory)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> AladModel:
        """A model folder or hub id (downloaded whole first: the student lives in a sub-folder)."""
        from .deploy import resolve_folder

        return super().from_pretrained(resolve_folder(pretrained_model_name_or_path, **kwargs), **kwargs)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, config: dict | None = None, **kwargs) -> AladModel:
        from .deploy import load_folder

        return load_folder(model_id, cls, **kwargs)

    # ----------------------------------------------------------------------------------------------
    def parts(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by the names PhaseConfig.trainable uses."""
        lora = [p for n, p in self.encoder.named_parameters() if "lora_" in n]
        lora_ids = {id(p) for p in lora}
        return {
            "student": [p for p in self.encoder.parameters() if id(p) not in lora_ids],
            "lora": lora,
            "adapter": list(self.adapter.parameters()) if self.adapter is not None else [],
            "head": list(self.head.parameters()) if self.head is not None else [],
        }

    def set_trainable(self, trainable: tuple[str, ...]) -> list[nn.Parameter]:
        """Freeze everything but the named parts; returns the parameters to optimise."""
        parts = self.parts()
        for params in parts.values():
            for p in params:
                p.requires_grad_(False)
        chosen = []
        for name in trainable:
            if not parts[name]:
                raise ValueError(f"nothing to train for part {name!r}: this model has no {name}")
            # Packed int8 Linear weights are not Parameters: without this check only the float leftovers
            # (embeddings, LayerNorm) of a quantized student would train, silently.
            if name == "student" and (
                packed_params(self.encoder) > 0 or not all(p.is_floating_point() for p in parts[name])
            ):
                raise ValueError("the student is quantized and cannot be fine-tuned; use mode 'frozen' or 'head'")
            chosen += parts[name]
        for p in chosen:
            p.requires_grad_(True)
        return chosen

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As ``nn.Module.load_state_dict``; with ``strict=False`` a part none of whose weights are given is
        not visited at all (its keys are reported missing).

        The trainer restores partial states (only the trained parts). torch.ao quantized Linear layers ask
        for their scale / zero point even with ``strict=False``, so a frozen int8 student must be left alone.
        """
        if strict:
            return super().load_state_dict(state_dict, strict=True, assign=assign)
        from torch.nn.modules.module import _IncompatibleKeys

        children = dict(self.named_children())
        missing, unexpected = [], [k for k in state_dict if k.split(".", 1)[0] not in children]
        for name, child in children.items():
            prefix = name + "."
            part = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
            if not part:
                missing += [prefix + k for k in child.state_dict()]
                continue
            result = child.load_state_dict(part, strict=False, assign=assign)
            missing += [prefix + k for k in result.missing_keys]
            unexpected += [prefix + k for k in result.unexpected_keys]
        return _IncompatibleKeys(missing, unexpected)

    def deployed_parameters(self) -> int:
        """M_C (+ LoRA) + adapter + head, counted once each (what the Sz column measures); int8 weights too."""
        return sum(p.numel() for params in self.parts().values() for p in params) + packed_params(self)


def add_lora(encoder: nn.Module, r: int = 8, alpha: int = 16, dropout: float = 0.1) -> nn.Module:
    """Wrap M_C with peft LoRA on the attention query/value projections (peft's per-architecture default)."""
    from peft import LoraConfig

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, bias="none")
    try:
        return _peft_model(encoder, config)
    except ValueError as e:  # architecture unknown to peft: name the attention projections ourselves
        names = {n.split(".")[-1] for n, m in encoder.named_modules() if isinstance(m, nn.Linear)}
        targets = [t for t in ("query", "value", "q", "v", "q_proj", "v_proj") if t in names]
        if not targets:
            raise ValueError(f"cannot place LoRA on {type(encoder).__name__}: {e}") from e
        return _peft_model(encoder, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets))


def _peft_model(encoder: nn.Module, config) -> nn.Module:
    import warnings

    from peft import get_peft_model

    with warnings.catch_warnings():
        # peft (up to 0.21.2, the newest) reads transformers 5's deprecated `is_gradient_checkpointing`: a
        # FutureWarning per LoRA run that no user can act on. Only that one message is silenced.
        warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        return get_peft_model(encoder, config)
