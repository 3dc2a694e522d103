"""alad_kit: Alignment Adapters (ALAd) that align compressed encoders with the large model they came from.

The floors of the package, from the bottom up, are described in docs/architecture.md: ``adapter`` (the idea),
``core``, ``models``, ``data``, ``compress``, ``tasks``, ``training``, ``analysis``, ``pipeline``, ``ui`` and
``cli``. This module only names the things most users start from:

    from alad_kit import AlignmentAdapter, RunConfig, run          # train: one ALAd run
    from alad_kit import AladModel, AladPipeline, load_encoder     # use: a trained model, predictions

``AladModel``, ``AladPipeline``, ``load_encoder`` and ``run`` are imported on first use (their modules take
longer to import than the rest together); ``import alad_kit`` imports torch (the adapter), not transformers.
"""

from alad_kit.adapter import AlignmentAdapter
from alad_kit.core.config import MODES, RunConfig, scale_config
from alad_kit.core.io import __version__
from alad_kit.tasks import register as register_task  # importing alad_kit.tasks registers POS, NER and QA


def load_encoder(*args, **kwargs):
    """``alad_kit.models.zoo.load_encoder`` (imported lazily: transformers is slow to import)."""
    from alad_kit.models.zoo import load_encoder as _load

    return _load(*args, **kwargs)


def run(*args, **kwargs) -> dict:
    """``alad_kit.pipeline.run.run``: one ALAd run (phases 1-3) for a :class:`RunConfig`; returns its metrics."""
    from alad_kit.pipeline.run import run as _run

    return _run(*args, **kwargs)


def __getattr__(name: str):
    """The classes imported on first use: ``AladModel`` (models.model), ``AladPipeline`` (pipeline.predict)."""
    if name == "AladModel":
        from alad_kit.models.model import AladModel as value
    elif name == "AladPipeline":
        from alad_kit.pipeline.predict import AladPipeline as value
    else:
        raise AttributeError(f"module 'alad_kit' has no attribute {name!r}")
    globals()[name] = value  # later lookups find it without this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = ["AladModel", "AladPipeline", "AlignmentAdapter", "MODES", "RunConfig", "load_encoder", "register_task",
           "run", "scale_config", "__version__"]
