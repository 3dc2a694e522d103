"""The deployed adapter in int8 (concat form, dynamic int8 Linear) and bf16: close to the float32 adapter."""

import json
from pathlib import Path

import pytest
import torch

from alad_kit.adapter import AlignmentAdapter
from alad_kit.models.adapter_precision import Bf16Adapter, Int8Adapter, adapter_in


@pytest.fixture
def adapter_and_input():
    torch.manual_seed(0)
    adapter = AlignmentAdapter(32, 48, window=5, hidden=64).eval()
    hidden = torch.randn(3, 9, 32)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    return adapter, hidden, mask


@pytest.mark.parametrize("precision, cls, tolerance", [("int8", Int8Adapter, 0.03), ("bf16", Bf16Adapter, 0.02)])
def test_low_precision_adapter_is_close_to_float(adapter_and_input, precision, cls, tolerance):
    adapter, hidden, mask = adapter_and_input
    low = adapter_in(adapter, precision)
    assert isinstance(low, cls) and low.config == adapter.config
    with torch.no_grad():
        ref, out = adapter(hidden, mask), low(hidden, mask)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    relative = (out - ref).norm() / ref.norm()
    assert 0 < relative < tolerance  # changed (really low precision), but only a little
    # Padding never enters a window: the real tokens of sentence 1 do not depend on what the padding holds.
    noisy = hidden.clone()
    noisy[1, 6:] = 100.0
    with torch.no_grad():
        assert torch.allclose(low(noisy, mask)[1, :6], out[1, :6], atol=1e-6)


def test_int8_concat_form_reads_the_same_windows(adapter_and_input):
    adapter, hidden, mask = adapter_and_input
    int8 = Int8Adapter(adapter)
    # A wrong window order would give errors of the size of the output itself, not a few per cent.
    with torch.no_grad():
        cos = torch.nn.functional.cosine_similarity(int8(hidden, mask), adapter(hidden, mask), dim=-1)
    assert cos.min() > 0.999


def test_fp32_is_the_adapter_itself_and_bad_names_fail(adapter_and_input):
    adapter, _, _ = adapter_and_input
    assert adapter_in(adapter, "fp32") is adapter
    with pytest.raises(ValueError, match="int4"):
        adapter_in(adapter, "int4")


def test_follow_gives_int8_next_to_an_int8_student_only(adapter_and_input):
    from alad_kit.models.adapter_precision import adapter_for_student
    from alad_kit.models.quant_io import dynamic_quantize

    adapter, _, _ = adapter_and_input
    student = torch.nn.Sequential(torch.nn.Linear(4, 4))
    assert adapter_for_student(adapter, student) is adapter
    assert isinstance(adapter_for_student(adapter, dynamic_quantize(student)), Int8Adapter)
    assert isinstance(adapter_for_student(adapter, student, "bf16"), Bf16Adapter)


def test_every_precision_but_fp32_is_a_registered_deployed_form():
    from alad_kit.core.config import ADAPTER_PRECISIONS
    from alad_kit.models.adapter_precision import DEPLOYED

    assert {"fp32", *DEPLOYED} == set(ADAPTER_PRECISIONS)


@pytest.mark.parametrize("kind", ["dense", "factorised"])
@pytest.mark.parametrize("precision, tolerance", [("int8", 5e-3), ("bf16", 1e-2)])
def test_deployed_forms_of_a_folder_written_before_kind_classes_give_the_same_outputs(kind, precision, tolerance):
    """tests/fixtures/adapters_4012d99: the outputs that code computed (bit for bit on the machine that wrote
    them; int8 kernels and bf16 rounding may differ a little on another CPU, far less than a wrong window)."""
    base = Path(__file__).parents[1] / "fixtures" / "adapters_4012d99"
    expected = json.loads((base / "expected.json").read_text())
    low = adapter_in(AlignmentAdapter.from_pretrained(base / kind).eval(), precision)
    with torch.no_grad():
        out = low(torch.tensor(expected["hidden"]), torch.tensor(expected["mask"]))
    torch.testing.assert_close(out, torch.tensor(expected[f"{kind}/{precision}"]), rtol=0, atol=tolerance)
