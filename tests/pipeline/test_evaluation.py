"""alad evaluate: the run's own test scores reproduced exactly; other data; unknown labels counted."""

import pytest

from alad_kit.pipeline.evaluation import evaluate_model, load_split


def test_reproduces_the_runs_test_scores_from_the_data_folder(deployed, pos_data_folder):
    run_dir, metrics = deployed("pos")
    result = evaluate_model(run_dir / "model", pos_data_folder, split="test", sample="run")
    assert result["scores"] == metrics["scores"]  # exactly, not approximately
    assert result["examples"] == metrics["data"]["test"] == 24 and result["unknown_labels"] == {}  # 24 of 32


def test_qa_reproduces_the_runs_test_scores(deployed, qa_task_data):
    run_dir, metrics = deployed("qa")
    result = evaluate_model(run_dir / "model", qa_task_data[0]["test"])
    assert result["scores"] == metrics["scores"]


def test_single_file_is_scored_whole_and_unknown_labels_are_counted(deployed, tmp_path, pos_data_folder):
    run_dir, _ = deployed("pos")
    other = tmp_path / "other-treebank.conllu"  # cross-domain: a tag the model never saw ("SYM")
    other.write_text("# sent_id = o-1\n1\tDer\t_\tDET\t_\t_\t0\t_\t_\t_\n2\t€\t_\tSYM\t_\t_\t0\t_\t_\t_\n"
                     "3\tfällt\t_\tVERB\t_\t_\t0\t_\t_\t_\n\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="1 of 3 gold tags carry 1 label.*SYM"):
        result = evaluate_model(run_dir / "model", other)
    assert result["examples"] == 1 and result["unknown_labels"] == {"SYM": 1}
    assert result["scores"]["accuracy"] <= 2 / 3
    whole = load_split("pos", pos_data_folder / "de_gsd-ud-dev.conllu")
    assert len(whole) == 24  # a file is not split three ways


def test_bad_data_is_named(deployed, tmp_path, pos_data_folder):
    run_dir, _ = deployed("pos")
    with pytest.raises(FileNotFoundError, match="nope"):
        evaluate_model(run_dir / "model", tmp_path / "nope")
    with pytest.raises(ValueError, match="no 'dev' split"):
        evaluate_model(run_dir / "model", pos_data_folder, split="dev")
