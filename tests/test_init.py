"""``alad_kit/__init__.py``: the names users start from, and an import that stays cheap."""

import subprocess
import sys

import pytest

import alad_kit


def _fresh(code: str) -> str:
    """Run ``code`` in a new interpreter (sys.modules untouched by other tests) and return what it prints."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_import_alad_kit_does_not_import_transformers_or_the_lazy_classes():
    loaded = _fresh("import sys, alad_kit; print(sorted(m for m in ('transformers', 'alad_kit.models.model', "
                    "'alad_kit.pipeline.predict', 'torch') if m in sys.modules))")
    assert loaded == "['torch']"  # torch comes with the adapter; transformers only on first use of AladModel


def test_the_top_level_names():
    from alad_kit import AladModel, AladPipeline
    from alad_kit.models.model import AladModel as model_cls
    from alad_kit.pipeline.predict import AladPipeline as pipeline_cls

    assert AladModel is model_cls and AladPipeline is pipeline_cls
    assert {"AladModel", "AladPipeline", "AlignmentAdapter", "RunConfig", "run"} <= set(alad_kit.__all__)
    assert set(alad_kit.__all__) <= set(dir(alad_kit))
    assert all(getattr(alad_kit, name) is not None for name in alad_kit.__all__)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'AladModle'"):
        alad_kit.AladModle  # noqa: B018
