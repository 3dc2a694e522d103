"""ONNX export: dynamic batch/length, parity with PyTorch (onnxruntime) on real sentences, LoRA merged."""

import numpy as np
import onnx
import onnxruntime as ort
import torch

from alad_kit.models.export import check_onnx, export_onnx
from alad_kit.models.model import AladModel
from alad_kit.tasks import get_task


def _dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_token_model_exports_with_parity(deployed, tmp_path):
    run_dir, _ = deployed("pos")
    model = AladModel.from_pretrained(run_dir / "model")
    path = export_onnx(model, tmp_path / "pos.onnx")
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.INT64 for i in graph.input)
    assert [o.name for o in graph.output] == ["logits"] and _dims(graph.output[0])[:2] == ["batch", "sequence"]
    report = check_onnx(model, path, repeats=2)
    assert report["max_abs_diff"] <= 1e-4 and report["texts"] == len(get_task("pos").sample_inputs)
    # A batch shape never traced (3 texts, other length) gives the same tags as PyTorch.
    enc = model.tokenizer(["Ein Satz .", "Noch ein viel längerer Satz mit mehr Wörtern .", "Ja"], padding=True,
                          return_tensors="np")
    feed = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    with torch.no_grad():
        ref = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.numpy()
    mask = feed["attention_mask"].astype(bool)
    assert np.abs(got - ref)[mask].max() <= 1e-4


def test_qa_model_exports_start_and_end_logits(deployed, tmp_path):
    run_dir, _ = deployed("qa")
    model = AladModel.from_pretrained(run_dir / "model")
    path = export_onnx(model, tmp_path / "qa.onnx")
    graph = onnx.load(str(path)).graph
    assert [o.name for o in graph.output] == ["start_logits", "end_logits"]
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]  # BERT pairs
    assert check_onnx(model, path, repeats=1)["max_abs_diff"] <= 1e-4
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_failed_or_killed_export_leaves_no_temporary_file(tmp_path, monkeypatch):
    import subprocess
    import sys

    import pytest

    from alad_kit.models.deploy import DeployConfig, attach
    from alad_kit.models.heads import TokenClassificationHead
    from alad_kit.models.zoo import keep_layers, load_encoder

    encoder, tokenizer = load_encoder("minilm-l6")
    model = attach(AladModel(keep_layers(encoder, [0]), None, TokenClassificationHead(384, 3)).eval(), tokenizer,
                   DeployConfig(task="ner", labels=("O", "B-LOC", "I-LOC"), teacher="minilm-l6", student="minilm-l6",
                                mode="head", window=None, max_length=48, doc_stride=None, eval_batch_size=8))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".ner.onnx.{dead.pid}.tmp").write_bytes(b"")  # the 0-byte file of a killed `alad export`

    def fails(graph, args, path, **kwargs):
        open(path, "wb").write(b"half a graph")
        raise RuntimeError("exporter failed")

    with monkeypatch.context() as patch:
        patch.setattr(torch.onnx, "export", fails)
        with pytest.raises(RuntimeError, match="exporter failed"):
            export_onnx(model, tmp_path / "ner.onnx")
    assert list(tmp_path.iterdir()) == []
    export_onnx(model, tmp_path / "ner.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["ner.onnx"]
