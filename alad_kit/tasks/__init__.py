"""Floor 5: the tasks. Each is one :class:`Task` object (``specs``), registered by name in
``core.config.TASKS``; built in: POS, NER and QA. ``metrics`` scores them, ``qa_postprocess`` turns span logits
into answers.

A new task: subclass :class:`Task` (or :class:`TokenTask`), then ``alad_kit.tasks.register(MyTask(...))``; every
command, table and notebook then offers it (docs/architecture.md, "Add a task").

The floors and their rule are in docs/architecture.md."""

from alad_kit.core.config import TASKS, register_task

from .specs import BUILT_IN, DEFAULT_TASK, SpanTask, Task, TokenTask, get_task

REQUIRED = ("load", "features", "make_head", "loss", "evaluate", "predict", "texts")


def register(task: Task, replace: bool = False) -> Task:
    """Make ``task`` a choice of every command, config, table and notebook; returns it."""
    if not isinstance(task, Task):
        raise TypeError(f"register() takes an alad_kit.tasks.Task, got {type(task).__name__}")
    missing = [name for name in REQUIRED if getattr(type(task), name, None) is getattr(Task, name)]
    if missing:
        raise TypeError(f"task {task.name!r} must define {', '.join(missing)} (see alad_kit.tasks.Task)")
    if not task.score_columns or task.selection_metric is None or not task.phase3_epochs:
        raise ValueError(f"task {task.name!r} needs score_columns, a selection_metric and phase3_epochs")
    register_task(task, replace=replace)
    return task


def unregister(name: str) -> None:
    """Remove the task ``name`` (tests; a built-in comes back only by registering it again)."""
    from alad_kit.core.config import SCALE_PRESETS

    TASKS.remove(name)
    for preset in SCALE_PRESETS.values():
        preset.phase3_epochs.pop(name, None)


for _task in BUILT_IN:
    register(_task)

__all__ = ["DEFAULT_TASK", "TASKS", "SpanTask", "Task", "TokenTask", "get_task", "register", "unregister"]
