"""paper_table: our grids next to the paper's Table 1, each cell recomputed from the runs."""

import json

from alad_kit.analysis.paper_table import cell, paper_markdown
from alad_kit.tasks import get_task


def _run(root, row, seed, f1):
    path = root / "ner-minilm-2l" / row / f"seed{seed}" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"task": "ner", "student": "minilm-l6", "student_layers": [0, 1],
                                "is_teacher": row == "teacher", "scores": {"f1_overall": f1}}))


def test_cells_give_mean_spread_and_seeds():
    assert cell([35.0, 36.0, 34.0]) == "35.00 ± 1.00 (3)"
    assert cell([64.47]) == "64.47 (1)" and cell([]) == "not run"


def test_the_table_is_computed_from_the_runs(tmp_path):
    _run(tmp_path, "teacher", 0, 0.60)
    for seed, (ft, joint, random) in enumerate([(0.30, 0.36, 0.34), (0.32, 0.38, 0.34)]):
        _run(tmp_path, "finetune", seed, ft)
        _run(tmp_path, "joint-w5", seed, joint)
        _run(tmp_path, "random-joint-w5", seed, random)
    text = paper_markdown(tmp_path)
    assert text.startswith("**NER (F1_O), two layers vs BERT-Tiny**")
    assert "| student fine-tuned | 19 | 31.00 ± 1.41 (2) |" in text
    assert "| joint W1 / W3 / W5 | 37 / 41 / 43 | not run / not run / 37.00 ± 1.41 (2) |" in text
    # gap: (37 - 31) / (60 - 31) = 21%, random (34 - 31) / 29 = 10%; the paper's (43 - 19) / (63 - 19) = 55%
    assert "| joint W5 55% | joint W5 21%; random joint adapter 10% |" in text
    assert "MiniLM-L6" not in text  # a study that is not there gets no table


def test_each_task_keeps_its_column_of_table_1():
    ner = get_task("ner").paper_table1
    assert (ner["BERT-Tiny"]["finetune"], ner["BERT-Tiny"]["joint-w5"], ner["BERT-Mini"]["joint-w5"]) == (19, 43, 53)
    assert get_task("pos").paper_table1["BERT-Tiny"]["teacher"] == 93 and get_task("qa").paper_table1["metric"] == "f1"
