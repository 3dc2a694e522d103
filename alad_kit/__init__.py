"""alad_kit: Alignment Adapters (ALAd) that align compressed encoders with the large model they came from."""

__version__ = "0.1.0"

from alad_kit.adapter import AlignmentAdapter  # noqa: E402
from alad_kit.core.config import MODES, RunConfig, scale_config  # noqa: E402


def load_encoder(*args, **kwargs):
    """``alad_kit.models.zoo.load_encoder`` (imported lazily: transformers is slow to import)."""
    from alad_kit.models.zoo import load_encoder as _load

    return _load(*args, **kwargs)


__all__ = ["AlignmentAdapter", "MODES", "RunConfig", "load_encoder", "scale_config", "__version__"]
