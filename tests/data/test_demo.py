"""The README's main job (`alad demo`) at smoke scale, and its offline data sources."""

import json

from alad_kit.cli import main
from alad_kit.data.demo import load_wnut16, python_docs_corpus
from alad_kit.pipeline.demo import DEMO_RUNS


def test_wnut16_is_the_real_wnut16_train_set():
    splits, labels = load_wnut16()
    assert sum(len(s) for s in splits.values()) == 2394  # WNUT-16 train: 2,394 tweets
    assert labels[0] == "O" and "B-person" in labels and "I-facility" in labels
    first = [" ".join(s["tokens"]) for split in splits.values() for s in split]
    assert any(t.startswith("@paulwalk It 's the view from where I 'm living") for t in first)
    ids = [set(s["id"]) for s in splits.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


def test_python_docs_corpus_is_english_prose():
    corpus = python_docs_corpus()
    assert len(corpus) > 500
    assert all(len(t.split()) >= 8 and "\n" not in t for t in corpus)


def test_demo_cli_smoke(tmp_path, capsys, monkeypatch, caplog):
    monkeypatch.delenv("ALAD_DATA_DIR", raising=False)
    assert main(["demo", "--scale", "smoke", "--out", str(tmp_path / "demo")]) == 0
    printed = capsys.readouterr().out
    notices = [r.getMessage() for r in caplog.records if "only test the pipeline" in r.getMessage()]
    assert len(notices) == len(DEMO_RUNS) == 4  # one line per run: head only, ALAd W3, the random control, fine-tuned
    for row in ("frozen M_C, head only", "frozen M_C + ALAd W3", "frozen M_C + random W3", "M_C fine-tuned",
                "aligned - random ="):
        assert row in printed
    for run in ("student_finetune", "frozen_w3", "random_w3", "head"):
        metrics = json.loads((tmp_path / "demo" / run / "metrics.json").read_text())
        assert metrics["teacher"] == "mpnet-base" and metrics["student_layers"] == [0, 1]
        assert metrics["data"] == {"train": 48, "validation": 24, "test": 24}
    frozen = json.loads((tmp_path / "demo" / "frozen_w3" / "metrics.json").read_text())
    assert frozen["alignment"]["after_phase2"]["mse"] < frozen["alignment"]["before_phase1"]["mse"]
