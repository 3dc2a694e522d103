"""Reading back what a run's tracker wrote (shared by tests/training and tests/pipeline; tests/ is on sys.path)."""

from alad_kit.training.tracking import LOGS_DIR, TRACKER_RUN


def scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} of the TensorBoard event files of a run's tracker."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / LOGS_DIR / TRACKER_RUN))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
