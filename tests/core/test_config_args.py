"""Flags and config files from a dataclass (alad_kit.core.config_args), as ``alad run`` uses them."""

import argparse
import dataclasses
import json
import typing

import pytest

from alad_kit.cli import build_parser, main, run_config_from_args
from alad_kit.core.config import RUN_CHOICES, RunConfig
from alad_kit.core.config_args import ConfigFileError, field_comments, load_config_file


def _cfg(*argv):
    return run_config_from_args(build_parser().parse_args(["run", *argv]))


def _run_actions() -> dict[str, argparse.Action]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices["run"]._actions}


def _other_value(f: dataclasses.Field, hint) -> tuple[list[str], object]:
    """(the words after the flag, the value they should produce) for a value that is not the field's default."""
    default = f.default if f.default is not dataclasses.MISSING else None
    if f.name in RUN_CHOICES:
        value = next(c for c in reversed(RUN_CHOICES[f.name]) if c != default and c != "ner")
        return [value], value
    base = typing.get_args(hint)[0] if typing.get_origin(hint) is not None and type(None) in typing.get_args(hint) else hint
    if base is int:
        value = 3 if default is None else default + 2  # window 5 -> 7 stays odd; unset epochs -> 3
        return [str(value)], value
    if base is float:
        return ["0.0123"], 0.0123
    if typing.get_origin(base) is tuple:
        return ["0,1"], (0, 1)
    if base is dict:
        return ['{"note": "n"}'], {"note": "n"}
    return [f"value-of-{f.name}"], f"value-of-{f.name}"


def test_every_run_config_field_is_settable_from_the_command_line():
    actions, hints = _run_actions(), typing.get_type_hints(RunConfig)
    for f in dataclasses.fields(RunConfig):
        action = actions[f.name]  # KeyError: a field without a flag
        assert action.help and "%(default)" not in action.help, f.name
        extra = ["--mode", "finetune"] if f.name == "is_teacher_run" else []
        if hints[f.name] is bool:
            argv, value = [action.option_strings[1 if f.default else 0]], not f.default
        else:
            words, value = _other_value(f, hints[f.name])
            argv = [action.option_strings[0], *words]
        task = [] if f.name == "task" else ["--task", "ner"]
        assert getattr(_cfg(*task, *extra, *argv), f.name) == value, f.name


def test_help_is_the_field_comment_with_the_default():
    comments, actions = field_comments(RunConfig), _run_actions()
    assert all(comments[f.name] for f in dataclasses.fields(RunConfig))
    assert actions["window"].help == "adapter window n (odd); ignored by modes without adapter (default: 5)"
    assert actions["teacher"].help.endswith("(default: mpnet-base)")  # the command's default, not RunConfig's
    assert actions["task"].help.endswith("(required)") and actions["mode"].choices == list(RUN_CHOICES["mode"])


def test_historic_flags_keep_their_meaning():
    cfg = _cfg("--task", "ner", "--no-cache", "--student-layers", "0,1", "--skip-phase1")
    assert (cfg.use_cache, cfg.student_layers, cfg.skip_phase1) == (False, (0, 1), True)
    assert _cfg("--task", "pos", "--mode", "finetune", "--teacher-baseline").is_teacher_run
    cfg = _cfg("--task", "qa")
    assert (cfg.teacher, cfg.student, cfg.mode, cfg.window, cfg.use_cache) == ("mpnet-base", "minilm-l6", "frozen", 5, True)


def test_scale_default_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("ALAD_SCALE", "cpu")
    assert _cfg("--task", "ner").scale == "cpu"


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_config_file_then_flags_override_it(tmp_path, suffix):
    values = {"task": "pos", "teacher": "my-teacher", "window": 3, "seed": 7, "student_layers": [0, 1],
              "use_cache": False, "extra": {"note": "from file"}}
    path = tmp_path / f"run{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(values))
    else:
        yaml = pytest.importorskip("yaml")
        path.write_text(yaml.safe_dump(values))
    cfg = _cfg("--config", str(path))
    assert (cfg.task, cfg.teacher, cfg.student, cfg.window, cfg.seed) == ("pos", "my-teacher", "minilm-l6", 3, 7)
    assert (cfg.student_layers, cfg.use_cache, cfg.extra) == ((0, 1), False, {"note": "from file"})
    cfg = _cfg("--config", str(path), "--seed", "9", "--cache", "--task", "ner", "--window", "1")
    assert (cfg.task, cfg.seed, cfg.use_cache, cfg.window, cfg.teacher) == ("ner", 9, True, 1, "my-teacher")


def test_a_run_config_as_metrics_json_stores_it_loads_back(tmp_path):
    cfg = RunConfig(task="ner", teacher="t", student="s", student_layers=(0, 2), lr=3e-4, precision="bf16")
    stored = json.loads(json.dumps({k: v for k, v in dataclasses.asdict(cfg).items() if k != "extra"}))
    (tmp_path / "config.json").write_text(json.dumps(stored))
    assert _cfg("--config", str(tmp_path / "config.json")) == cfg


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"task": "ner", "windw": 3}', "unknown key 'windw' (RunConfig has no such field; did you mean 'window'?)"),
        ('{"task": "ner", "window": "three"}', "key 'window' wants int, got 'three'"),
        ('{"task": "ner", "use_cache": "no"}', "key 'use_cache' wants bool, got 'no'"),
        ('{"task": "ner", "window": true}', "key 'window' wants int, got True"),
        ('{"task": "ner", "student_layers": "0,1"}', "key 'student_layers' wants list of int or null"),
        ('["ner"]', "a config file holds a mapping of RunConfig fields, got list"),
        ('{"task": "ner",', "invalid JSON (Expecting property name"),
    ],
)
def test_bad_config_file_is_one_line_naming_file_and_key(tmp_path, capsys, content, message):
    path = tmp_path / "run.json"
    path.write_text(content)
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"alad run: error: {path}: {message}")


def test_unreadable_config_file(tmp_path, capsys):
    assert main(["run", "--config", str(tmp_path / "missing.json")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"alad run: error: {tmp_path / 'missing.json'}: cannot read the config file")
    with pytest.raises(ConfigFileError, match="cannot read"):
        load_config_file(tmp_path, RunConfig)  # a directory


def test_task_is_required_from_file_or_flag(tmp_path, capsys):
    (tmp_path / "run.json").write_text('{"seed": 1}')
    with pytest.raises(SystemExit) as exc:
        main(["run", "--config", str(tmp_path / "run.json")])
    assert exc.value.code == 2
    assert "the following arguments are required: --task" in capsys.readouterr().err


def test_float_tuples_parse_as_floats():
    import argparse
    from dataclasses import dataclass

    from alad_kit.core.config_args import add_dataclass_arguments

    @dataclass(frozen=True)
    class Grid:
        lrs: tuple[float, ...] = (1e-3,)  # learning rates
        layers: tuple[int, ...] = (0,)  # layers

    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Grid)
    args = parser.parse_args(["--lrs", "0.003,1e-2", "--layers", "0,1"])
    assert args.lrs == (0.003, 0.01) and args.layers == (0, 1)
    with pytest.raises(SystemExit):
        parser.parse_args(["--layers", "0.5"])
