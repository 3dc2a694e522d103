"""alad_kit: Alignment Adapters (ALAd) that align compressed encoders with the large model they came from.

The floors of the package, from the bottom up, are described in docs/architecture.md: ``adapter`` (the idea),
``core``, ``models``, ``data``, ``compress``, ``tasks``, ``training``, ``analysis``, ``pipeline``, ``ui`` and
``cli``. This module only names the four things most users start from.
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


__all__ = ["AlignmentAdapter", "MODES", "RunConfig", "load_encoder", "register_task", "run", "scale_config", "__version__"]
