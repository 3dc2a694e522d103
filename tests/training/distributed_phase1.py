"""Phase 1 under data parallelism (not a test module: ``tests/training/test_distributed.py`` launches it).

    torchrun --nproc_per_node 2 tests/training/distributed_phase1.py OUT CACHE   (gloo on CPU)
    python tests/training/distributed_phase1.py OUT CACHE                          (one process, for comparison)

Teacher: MiniLM-L6; student: its first layer; 64 texts of Python's documentation; the trainer is exactly
``alad_kit.training.trainer.train_phase`` with the PHASE1 objective. Every rank writes ``rank<r>.json`` (world size,
the example indices it trained on, its loss history) and ``rank<r>.safetensors`` (its final adapter
weights); rank 0 also saves the adapter with ``save_pretrained`` to ``OUT/adapter``. A last one-batch
phase checks that a rank without a batch of its own does not stall the others.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

N_TEXTS, BATCH_SIZE, EPOCHS, MAX_LENGTH = 64, 8, 6, 48


def main(out: Path, cache_dir: Path) -> None:
    from accelerate import Accelerator
    from safetensors.torch import save_file

    from alad_kit.adapter import AlignmentAdapter
    from alad_kit.core.config import PHASE1
    from alad_kit.data.demo import python_docs_corpus
    from alad_kit.models.model import AladModel
    from alad_kit.models.zoo import keep_layers, load_encoder
    from alad_kit.training.cache import EmbeddingCache
    from alad_kit.training.phases import alignment_loss, build_alignment_data
    from alad_kit.training.trainer import train_phase

    teacher, tokenizer = load_encoder("minilm-l6")
    student = keep_layers(teacher, [0])
    texts = python_docs_corpus()[:N_TEXTS]
    # Every rank fills the same embedding cache at once (the cache must tolerate that), and nothing here
    # sets up torch.distributed: train_phase's Accelerator has to do it by itself.
    data = build_alignment_data(texts, student, tokenizer, teacher, tokenizer, EmbeddingCache(cache_dir),
                                max_length=MAX_LENGTH, desc="phase1")

    seen: list[int] = []

    def make_batch(indices):
        seen.extend(indices)
        return data.make_batch(indices)

    torch.manual_seed(0)
    adapter = AlignmentAdapter(student.config.hidden_size, teacher.config.hidden_size, window=3, hidden=256)
    model = AladModel(student, adapter)
    phase = replace(PHASE1, epochs=EPOCHS)
    result = train_phase(phase, model, len(data), make_batch, alignment_loss, batch_size=BATCH_SIZE, seed=0,
                         device="cpu")

    accelerator = Accelerator(cpu=True)  # the state train_phase created (a singleton)
    rank, world = accelerator.process_index, accelerator.num_processes
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in adapter.state_dict().items()}
    save_file(state, str(out / f"rank{rank}.safetensors"))
    backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else None
    report = {"rank": rank, "world_size": world, "backend": backend, "distributed_type": str(accelerator.distributed_type),
              "seen": seen, "steps": result.steps, "history": result.history, "n_examples": len(data),
              "epochs": EPOCHS, "batch_size": BATCH_SIZE}
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    if accelerator.is_main_process:
        adapter.save_pretrained(out / "adapter")
    # Fewer batches (one) than processes: every rank must still take the same number of steps, or the
    # idle one leaves the other waiting forever in DDP's gradient all-reduce.
    tiny = train_phase(replace(PHASE1, name="phase1-tiny"), model, 5, data.make_batch, alignment_loss,
                       batch_size=BATCH_SIZE, seed=0, device="cpu")
    report["tiny_steps"] = tiny.steps
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    accelerator.wait_for_everyone()
    print(f"rank {rank}/{world} backend={backend} steps={result.steps} "
          f"loss {result.history[0][1]:.4f} -> {result.history[-1][1]:.4f}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
