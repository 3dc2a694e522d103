"""Issue 21: a task is one object (alad_kit.tasks). Outside tasks/ and the readers in data/, no module names a
task: tables, commands, deployment and notebooks ask the task's spec, so a new task needs no edit there."""

import re
from pathlib import Path

import alad_kit

PACKAGE = Path(alad_kit.__file__).parent
NAMES = re.compile(r"[\"'](qa|ner|pos|upos)[\"']")  # the built-in tasks and POS's label field, as string literals
ALLOWED = ("tasks", "data")


def test_no_module_outside_tasks_and_data_names_a_task():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ALLOWED or "configs" in rel.parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if NAMES.search(line):
                found.append(f"alad_kit/{rel.as_posix()}:{number}: {line.strip()}")
    assert not found, "ask the task spec (alad_kit.tasks.get_task) instead of naming a task:\n" + "\n".join(found)


def test_the_check_sees_a_named_task():
    assert NAMES.search('if cfg.task == "qa":') and NAMES.search("TASKS = ('pos', 'ner')")
    assert not NAMES.search("if spec.pairs:")
