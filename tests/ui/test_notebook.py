"""notebook_setup: the notebooks' parameters (scale, models, data, runs folder) read from the environment."""

import dataclasses
import json
from pathlib import Path

import pytest

from alad_kit.core.config import RunConfig
from alad_kit.ui.notebook import NotebookSetup, notebook_setup


@pytest.fixture
def env(monkeypatch):
    for name in ("ALAD_SCALE", "ALAD_DATA_DIR", "ALAD_RUNS_DIR", "ALAD_RESULTS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_person_gets_the_tiny_scale_on_wnut16(env):
    setup = notebook_setup()  # ALAD_SCALE unset: someone opened the notebook
    assert (setup.scale, setup.task, setup.data_dir, setup.seed) == ("tiny", "ner", "wnut16", 0)
    assert (setup.teacher, setup.student, setup.student_layers) == ("mpnet-base", "minilm-l6", (0, 1))
    assert setup.quick and not setup.smoke
    assert setup.runs == Path("../runs/nb") / "tiny-ner"  # relative to notebooks/, shared by all notebooks


def test_ci_sets_the_smoke_scale(env):
    env.setenv("ALAD_SCALE", "smoke")
    setup = notebook_setup()
    assert (setup.teacher, setup.student, setup.student_layers) == ("minilm-l6", "minilm-l6", (0,))
    assert setup.smoke and setup.quick
    assert setup.runs == Path("../runs/nb") / "smoke-ner"


@pytest.mark.parametrize("scale", ["cpu", "full"])
def test_larger_scales_distil_mpnet_into_the_whole_minilm(env, scale):
    env.setenv("ALAD_SCALE", scale)
    setup = notebook_setup(task="pos")
    assert (setup.scale, setup.teacher, setup.student, setup.student_layers) == (scale, "mpnet-base", "minilm-l6", None)
    assert not setup.smoke and not setup.quick
    assert setup.runs == Path("../runs/nb") / f"{scale}-pos"


def test_unknown_scale_is_refused(env):
    env.setenv("ALAD_SCALE", "huge")
    with pytest.raises(ValueError, match="scale"):
        notebook_setup()


def test_unknown_task_is_refused(env):
    with pytest.raises(ValueError, match="task"):
        notebook_setup(task="sentiment")


def test_data_and_runs_folders_come_from_the_environment(env, tmp_path):
    (tmp_path / "data").mkdir()
    env.setenv("ALAD_SCALE", "smoke")
    env.setenv("ALAD_DATA_DIR", str(tmp_path / "data"))
    env.setenv("ALAD_RUNS_DIR", str(tmp_path / "runs"))
    setup = notebook_setup(task="qa", seed=3)
    assert setup.data_dir == str(tmp_path / "data")
    assert setup.runs == tmp_path / "runs" / "smoke-qa"
    assert setup.seed == 3


def test_relative_data_dir_is_found_from_notebooks(env, tmp_path):
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "notebooks").mkdir()
    env.chdir(tmp_path / "notebooks")  # as a notebook kernel sees it; CI exports paths from the repo root
    env.setenv("ALAD_DATA_DIR", "shared/data")
    assert notebook_setup().data_dir == str((tmp_path / "shared" / "data").resolve())


def test_missing_data_dir_is_an_error(env, tmp_path):
    env.setenv("ALAD_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError):
        notebook_setup()


def test_common_kwargs_and_run_config(env):
    env.setenv("ALAD_SCALE", "smoke")
    setup = notebook_setup()
    assert setup.common() == dict(task="ner", teacher="minilm-l6", student="minilm-l6", student_layers=(0,),
                                  scale="smoke", data_dir="wnut16", seed=0,
                                  cache_dir=str(Path("../runs/nb") / "smoke-ner" / ".alad_cache"))
    cfg = setup.run_config("frozen_w3", mode="frozen", window=3)
    assert cfg == RunConfig(mode="frozen", window=3, out=str(setup.runs / "frozen_w3"), **setup.common())
    # overrides replace the shared values (notebook 06 trains compressed students with all their layers)
    other = setup.run_config("compress/asc/head", student="students/asc", student_layers=None, mode="head")
    assert (other.student, other.student_layers, other.out) == ("students/asc", None,
                                                                  str(setup.runs / "compress" / "asc" / "head"))


def test_setup_is_frozen_and_validated(env):
    setup = notebook_setup()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setup.scale = "cpu"
    with pytest.raises(ValueError, match="scale"):
        dataclasses.replace(setup, scale="huge")
    with pytest.raises(ValueError, match="teacher"):
        dataclasses.replace(setup, teacher="")
    with pytest.raises(ValueError, match="seed"):
        dataclasses.replace(setup, seed="0")
    assert isinstance(setup, NotebookSetup)


def _bench(path, teacher, student, windows=(1, 3, 5)):
    rows = [{"device": "cpu", "model": student, "window": w, "spd": 2.0} for w in (None, *windows)]
    path.write_text(json.dumps({"teacher": {"name": teacher}, "rows": rows}))
    return path


def test_speed_bench_uses_a_bench_of_the_same_models_else_measures_one(env, tmp_path, monkeypatch):
    env.setenv("ALAD_RUNS_DIR", str(tmp_path / "runs"))
    env.setenv("ALAD_SCALE", "smoke")
    setup = notebook_setup()  # smoke: minilm-l6 cut to layer 0 under a whole minilm-l6
    assert setup.student_key == "minilm-l6:0"
    covering = _bench(tmp_path / "covering.json", "minilm-l6", "minilm-l6:0")
    assert setup.speed_bench(committed=covering) == covering
    calls = []

    def fake_run_bench(teacher, students, out, **kwargs):
        calls.append((teacher, students))
        _bench(out, teacher, students[0])

    monkeypatch.setattr("alad_kit.analysis.bench.run_bench", fake_run_bench)
    other_teacher = _bench(tmp_path / "other.json", "mpnet-base", "minilm-l6:0")
    measured = setup.speed_bench(committed=other_teacher)
    assert measured == setup.runs / "bench.json" and calls == [("minilm-l6", ["minilm-l6:0"])]
    assert setup.speed_bench(committed=_bench(tmp_path / "w1.json", "minilm-l6", "minilm-l6:0", (1,))) == measured
    assert len(calls) == 1  # measured once, then reused
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ValueError, match="bad.json: not a bench JSON"):
        setup.speed_bench(committed=tmp_path / "bad.json")


def test_copy_notebooks_never_overwrites_a_copy(tmp_path):
    from alad_kit.ui.notebook import copy_notebooks

    source, dest = tmp_path / "notebooks", tmp_path / "my-notebooks"
    source.mkdir()
    (source / "01_a.ipynb").write_text("{}")
    (source / "02_b.ipynb").write_text("{}")
    copied, kept = copy_notebooks(source, dest)
    assert [p.name for p in copied] == ["01_a.ipynb", "02_b.ipynb"] and kept == []
    (dest / "01_a.ipynb").write_text('{"mine": 1}')  # the person's work
    copied, kept = copy_notebooks(source, dest)
    assert copied == [] and len(kept) == 2 and (dest / "01_a.ipynb").read_text() == '{"mine": 1}'
    with pytest.raises(ValueError, match="tracked notebooks"):
        copy_notebooks(source, source)


def test_the_notebooks_command_copies_the_repository_notebooks(tmp_path, capsys):
    from alad_kit.cli import main

    assert main(["notebooks", "--to", str(tmp_path / "mine")]) == 0
    tracked = sorted(p.name for p in (Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
    assert sorted(p.name for p in (tmp_path / "mine").glob("*.ipynb")) == tracked
    assert f"{len(tracked)} copied to {tmp_path / 'mine'}; open them with: jupyter lab" in capsys.readouterr().out


def test_no_corpus_is_said_once_as_an_alad_line_on_stdout(env, capsys, recwarn):
    from alad_kit.data.task_data import load_corpus_texts

    setup = notebook_setup()  # ALAD_DATA_DIR unset: phase 1 will read the fallback text
    assert len(load_corpus_texts(setup.data_dir, 3)) == 3  # what a run does: no second warning
    out, err = capsys.readouterr()
    lines = [line for line in out.splitlines() if "phase-1 corpus" in line]
    assert len(lines) == 1 and lines[0].startswith("alad: WARNING: no phase-1 corpus (ALAD_DATA_DIR is not set)")
    assert "phase-1 corpus" not in err
    assert not [w for w in recwarn if "phase-1 corpus" in str(w.message)]


def test_a_data_folder_with_a_corpus_says_nothing(env, tmp_path, capsys):
    (tmp_path / "corpus_en_wiki").mkdir()
    (tmp_path / "corpus_en_wiki" / "a.txt").write_text("One line of text.\n")
    env.setenv("ALAD_DATA_DIR", str(tmp_path))
    notebook_setup()
    assert "phase-1 corpus" not in capsys.readouterr().out


def test_a_warning_repeated_by_every_run_shows_once(env, capsys):
    import logging

    env.setenv("ALAD_SCALE", "smoke")
    notebook_setup()
    for _ in range(3):  # three smoke runs of a sweep
        logging.getLogger("alad_kit.pipeline.run").warning("scale smoke: only the pipeline")
    logging.getLogger("alad_kit.pipeline.run").info("reusing the finished run")  # information stays quiet
    out = capsys.readouterr().out
    assert out.count("alad: WARNING: scale smoke: only the pipeline") == 1 and "reusing" not in out


def test_committed_results_read_the_cpu_study_and_never_train(env, tmp_path, monkeypatch):
    env.setenv("ALAD_RESULTS", "committed")
    env.setenv("ALAD_RUNS_DIR", str(tmp_path))
    setup = notebook_setup(can_show_committed=True)
    assert (setup.committed, setup.scale, setup.student_layers) == (True, "cpu", (0, 1))
    assert setup.runs == tmp_path / "committed-ner" and setup.study.name == "ner-minilm-2l"
    seen = []
    monkeypatch.setattr("alad_kit.ui.notebook.load_committed", lambda configs, study: seen.append(study) or "rows")
    monkeypatch.setattr("alad_kit.ui.notebook.sweep", lambda configs: pytest.fail("trained in committed mode"))
    assert setup.sweep([setup.run_config("frozen_w3", mode="frozen", window=3)]) == "rows" and seen == [setup.study]


def test_committed_results_elsewhere_are_refused_or_reported(env, capsys):
    env.setenv("ALAD_RESULTS", "committed")
    setup = notebook_setup()  # a notebook that needs the models: it trains, and says why
    assert not setup.committed and setup.scale == "tiny"
    assert "needs trained models" in capsys.readouterr().out
    env.setenv("ALAD_SCALE", "tiny")
    with pytest.raises(ValueError, match="ALAD_RESULTS=committed shows the committed cpu-scale study"):
        notebook_setup(can_show_committed=True)
    env.setenv("ALAD_RESULTS", "cached")
    with pytest.raises(ValueError, match="ALAD_RESULTS must be one of train, committed"):
        notebook_setup(can_show_committed=True)
