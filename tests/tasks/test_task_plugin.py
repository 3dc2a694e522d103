"""A task defined here, in the test, with no edit to alad_kit: sentence-level topic classification over a tiny
in-test dataset. Registered through the public registry, it runs through ``alad run``, ``alad evaluate``,
``alad predict``, ``alad table`` and a two-seed ``alad study`` (the CLI's main(), in-process), which is what
docs/architecture.md ("Add a task") promises."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from alad_kit import tasks
from alad_kit.cli import main
from alad_kit.tasks.specs import predict_logits

TOPICS = {
    "sport": ["the team won the match", "she scored a goal in the final", "the players trained all week",
              "fans cheered the striker", "the coach praised the defence", "a late goal decided the game"],
    "weather": ["heavy rain fell all night", "the sun shone over the hills", "a cold wind blew from the north",
                "snow covered the roads", "the storm brought thunder and hail", "fog lay over the valley"],
}


def _rows(n: int, offset: int) -> list[dict]:
    """``n`` labelled sentences, alternating topics; ``offset`` varies the wording between splits."""
    rows = []
    for i in range(n):
        topic = sorted(TOPICS)[i % 2]
        sentences = TOPICS[topic]
        rows.append({"text": f"{sentences[(i // 2 + offset) % len(sentences)]} on day {i + offset}", "label": topic})
    return rows


class MeanPoolHead(nn.Module):
    """Masked mean over the tokens of R, then one linear layer: (B, T, D), (B, T) -> (B, K)."""

    def __init__(self, dim: int, num_labels: int):
        super().__init__()
        self.classifier = nn.Linear(dim, num_labels)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = torch.ones(hidden.shape[:2], device=hidden.device) if attention_mask is None else attention_mask
        mask = mask.unsqueeze(-1).to(hidden.dtype)
        return self.classifier((hidden * mask).sum(1) / mask.sum(1).clamp(min=1))


@dataclass(frozen=True, kw_only=True)
class TopicTask(tasks.Task):
    name: str = "topic"
    title: str = "Topic"
    description: str = "topic classification"
    label_field: str = "label"
    selection_metric: str = "accuracy"
    score_columns: tuple = (("accuracy", "Acc", 100.0),)
    phase3_epochs: dict = field(default_factory=lambda: {"smoke": 1})

    def load(self, data_dir, strict: bool = False) -> dict:
        from datasets import Dataset

        data = json.loads((Path(data_dir) / "topics.json").read_text())
        return {name: Dataset.from_list(rows) for name, rows in data.items()}

    def texts(self, split) -> list[str]:
        return list(split["text"])

    def features(self, split, tokenizer, labels, max_length: int, doc_stride=None) -> list[dict]:
        enc = tokenizer(list(split["text"]), truncation=True, max_length=max_length)
        label_id = {label: i for i, label in enumerate(labels)}
        return [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                 "label": label_id[label]} for i, label in enumerate(split["label"])]

    def make_head(self, dim: int, labels) -> nn.Module:
        return MeanPoolHead(dim, len(labels))

    def loss(self, logits, batch):
        return F.cross_entropy(logits, batch["label"])

    def evaluate(self, model, examples, features, batch_size, device, labels, pad_token_id, precision="fp32"):
        logits = predict_logits(model, features, batch_size, pad_token_id, device, precision)
        pred = [labels[int(lg.argmax())] for lg in logits]
        gold = list(examples["label"])
        return {"accuracy": sum(p == g for p, g in zip(pred, gold)) / len(gold)}

    def predict(self, pipe, inputs: list) -> list[dict]:
        labels = list(pipe.config.labels)
        rows = {"text": list(inputs), "label": [labels[0]] * len(inputs)}
        logits = pipe.logits(self.features(rows, pipe.tokenizer, labels, max_length=pipe.max_length))
        return [{"text": text, "label": labels[int(lg.argmax())]} for text, lg in zip(inputs, logits)]


@pytest.fixture
def topic_task():
    task = tasks.register(TopicTask())
    yield task
    tasks.unregister(task.name)


@pytest.fixture
def topic_data(tmp_path):
    folder = tmp_path / "topic_data"
    folder.mkdir()
    splits = {"train": _rows(32, 0), "validation": _rows(8, 1), "test": _rows(8, 2)}
    (folder / "topics.json").write_text(json.dumps(splits))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(s for sentences in TOPICS.values() for s in sentences) + "\n")
    return folder, corpus


MODELS = ["--teacher", "minilm-l6", "--student", "minilm-l6", "--student-layers", "0", "--scale", "smoke",
          "--device", "cpu"]


def test_registering_a_task_needs_its_methods():
    @dataclass(frozen=True, kw_only=True)
    class Half(tasks.Task):
        name: str = "half"
        title: str = "Half"
        description: str = "a task without its methods"
        label_field: str = "label"
        selection_metric: str = "accuracy"
        score_columns: tuple = (("accuracy", "Acc", 100.0),)
        phase3_epochs: dict = field(default_factory=lambda: {"smoke": 1})

    with pytest.raises(TypeError, match="must define load, features, make_head, loss, evaluate, predict, texts"):
        tasks.register(Half())
    assert "half" not in tasks.TASKS
    with pytest.raises(ValueError, match="registered already"):
        tasks.register(TopicTask(name="ner"))


def test_a_task_defined_in_a_test_runs_through_every_command(topic_task, topic_data, tmp_path, capsys):
    data, corpus = topic_data
    common = [*MODELS, "--data-dir", str(data), "--corpus-dir", str(corpus), "--cache-dir", str(tmp_path / "cache")]
    run_dir = tmp_path / "runs" / "frozen_w3"
    assert main(["run", "--task", "topic", "--mode", "frozen", "--window", "3", "--out", str(run_dir), *common]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["task"] == "topic" and metrics["selection"]["metric"] == "accuracy"
    assert 0.0 <= metrics["scores"]["accuracy"] <= 1.0
    card = (run_dir / "model" / "README.md").read_text()
    assert "topic classification" in card and "pipeline_tag: text-classification" in card

    capsys.readouterr()
    assert main(["evaluate", str(run_dir / "model"), "--data", str(data), "--split", "test"]) == 0
    out = capsys.readouterr().out
    scores = json.loads(out[out.index("{"):])
    assert scores == metrics["scores"]  # the run's own evaluation, reproduced from the folder

    assert main(["predict", str(run_dir / "model"), "the striker scored twice", "rain and wind all day"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["text"] for r in rows] == ["the striker scored twice", "rain and wind all day"]
    assert all(r["label"] in ("sport", "weather") for r in rows)

    assert main(["table", str(tmp_path / "runs"), "--out", str(tmp_path / "table")]) == 0
    assert "Topic Acc" in capsys.readouterr().out  # the task's own score column, titled by the task

    study = tmp_path / "study"
    assert main(["study", "--task", "topic", "--rows", "head", "frozen-w3", "--seeds", "0", "1", "--out", str(study),
                 *common]) == 0
    seeds = sorted(p.parent.relative_to(study).as_posix() for p in study.rglob("metrics.json"))
    assert len(seeds) == 4 and all(s.endswith(("seed0", "seed1")) for s in seeds)
    assert "Topic Acc" in capsys.readouterr().out + "".join(p.read_text() for p in study.rglob("*.md"))
