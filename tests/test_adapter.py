import json
import re
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from alad_kit import AlignmentAdapter
from alad_kit.adapter import ADAPTER_KINDS, CONFIG_NAME, WEIGHTS_NAME, AdapterKind, register_kind, windowed
from alad_kit.adapter import KINDS as ADAPTER_KIND_CLASSES


def concat_reference(adapter: AlignmentAdapter, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The adapter written as in the paper: concat the zero-padded window, Linear, GELU, Linear."""
    n = adapter.window
    if mask is not None:
        h = h * mask.unsqueeze(-1)
    B, T, D = h.shape
    padded = torch.cat([torch.zeros(B, n // 2, D), h, torch.zeros(B, n // 2, D)], dim=1)
    windows = torch.cat([padded[:, k : k + T] for k in range(n)], dim=-1)  # (B, T, n*D)
    w1, b1 = adapter.first_layer_as_linear()
    return adapter.out_proj(F.gelu(windows @ w1.T + b1))


KINDS = ("dense", "factorised")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("window", [1, 3, 5, 7])
@pytest.mark.parametrize("dims", [(16, 24), (24, 16), (8, 8)])
def test_conv_equals_concat_reference(window, dims, kind):
    torch.manual_seed(0)
    adapter = AlignmentAdapter(dims[0], dims[1], window=window, hidden=32, kind=kind)
    h = torch.randn(3, 9, dims[0])
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 2:] = 0
    out = adapter(h, mask)
    assert out.shape == (3, 9, dims[1])
    torch.testing.assert_close(out, concat_reference(adapter, h, mask), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(adapter(h), concat_reference(adapter, h, None), atol=1e-5, rtol=1e-5)


def conv_reference(adapter: AlignmentAdapter, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The same map through the stored Conv1d kernel (the layout of saved adapters)."""
    x = adapter.window_proj((h * mask.unsqueeze(-1)).transpose(1, 2))
    return adapter.out_proj(F.gelu(x.transpose(1, 2)))


@pytest.mark.parametrize("window", [1, 3, 5])
def test_forward_equals_the_stored_convolution_and_trains_in_bf16(window):
    torch.manual_seed(0)
    adapter = AlignmentAdapter(16, 24, window=window, hidden=32)
    h, mask = torch.randn(2, 7, 16), torch.ones(2, 7)
    mask[1, 4:] = 0
    torch.testing.assert_close(adapter(h, mask), conv_reference(adapter, h, mask), atol=1e-5, rtol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = adapter(h, mask)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert adapter.window_proj.weight.grad is not None and adapter.window_proj.weight.grad.dtype == torch.float32
    torch.testing.assert_close(out.float(), conv_reference(adapter, h, mask), atol=0.1, rtol=0.05)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("window", [1, 3, 5])
def test_locality(window, kind):
    torch.manual_seed(1)
    adapter = AlignmentAdapter(8, 12, window=window, hidden=16, kind=kind)
    h = torch.randn(1, 11, 8)
    j = 5
    changed = h.clone()
    changed[0, j] += 3.0
    diff = (adapter(h) - adapter(changed)).abs().sum(-1)[0]
    affected = (diff > 1e-6).nonzero().flatten().tolist()
    assert affected == list(range(j - window // 2, j + window // 2 + 1))


@pytest.mark.parametrize("kind", KINDS)
def test_padding_never_leaks_into_real_tokens(kind):
    torch.manual_seed(2)
    adapter = AlignmentAdapter(8, 8, window=5, hidden=16, kind=kind)
    real = torch.randn(1, 4, 8)
    alone = adapter(real, torch.ones(1, 4))
    for garbage in (torch.zeros(1, 3, 8), 100 * torch.randn(1, 3, 8)):
        batch = torch.cat([real, garbage], dim=1)
        mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0]])
        torch.testing.assert_close(adapter(batch, mask)[:, :4], alone, atol=1e-5, rtol=1e-5)


def test_seeded_value_pinned():
    torch.manual_seed(0)
    adapter = AlignmentAdapter(4, 6, window=3, hidden=8)
    out = adapter(torch.ones(1, 2, 4))
    assert out.shape == (1, 2, 6)
    # Pinned once from this seed: changes here mean the initialisation or the maths changed.
    assert out.sum().item() == pytest.approx(-0.451431, abs=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(tmp_path, kind):
    torch.manual_seed(3)
    adapter = AlignmentAdapter(8, 12, window=3, hidden=16, kind=kind)
    adapter.save_pretrained(tmp_path / "a")
    loaded = AlignmentAdapter.from_pretrained(tmp_path / "a")
    assert loaded.config == adapter.config
    h = torch.randn(2, 5, 8)
    assert torch.equal(loaded(h), adapter(h))
    assert not list((tmp_path / "a").glob("*.tmp"))
    assert json.loads((tmp_path / "a" / CONFIG_NAME).read_text())["kind"] == kind


def test_config_saved_before_kinds_existed_loads_as_dense(tmp_path):
    torch.manual_seed(3)
    adapter = AlignmentAdapter(8, 12, window=3, hidden=16)
    adapter.save_pretrained(tmp_path)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    del config["kind"]
    (tmp_path / CONFIG_NAME).write_text(json.dumps(config))
    loaded = AlignmentAdapter.from_pretrained(tmp_path)
    assert loaded.config.kind == "dense"
    h = torch.randn(2, 5, 8)
    assert torch.equal(loaded(h), adapter(h))


def test_factorised_weights_do_not_load_into_a_dense_adapter(tmp_path):
    AlignmentAdapter(8, 12, window=3, hidden=16, kind="factorised").save_pretrained(tmp_path)
    with pytest.raises(RuntimeError, match="window_proj"):
        AlignmentAdapter(8, 12, window=3, hidden=16).load_state_dict(
            AlignmentAdapter.from_pretrained(tmp_path).state_dict())


def test_from_pretrained_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="alad_adapter_config.json"):
        AlignmentAdapter.from_pretrained(tmp_path)


def test_files_are_not_named_like_peft_and_old_names_still_load(tmp_path):
    from alad_kit.adapter import CONFIG_NAME, LEGACY_NAMES, WEIGHTS_NAME

    torch.manual_seed(4)
    adapter = AlignmentAdapter(4, 6, window=3, hidden=8)
    adapter.save_pretrained(tmp_path / "new")
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME])
    assert not set(LEGACY_NAMES) & {CONFIG_NAME, WEIGHTS_NAME, "adapter_model.safetensors"}
    (tmp_path / "new").rename(tmp_path / "old")  # a folder written before the rename
    (tmp_path / "old" / CONFIG_NAME).rename(tmp_path / "old" / LEGACY_NAMES[0])
    (tmp_path / "old" / WEIGHTS_NAME).rename(tmp_path / "old" / LEGACY_NAMES[1])
    h = torch.randn(1, 4, 4)
    assert torch.equal(AlignmentAdapter.from_pretrained(tmp_path / "old")(h), adapter(h))


def test_flops_per_token():
    adapter = AlignmentAdapter(384, 768, window=5, hidden=1280)
    assert adapter.flops_per_token() == 2 * (5 * 384 * 1280 + 1280 * 768)
    factorised = AlignmentAdapter(384, 768, window=5, hidden=1280, kind="factorised")
    assert factorised.flops_per_token() == 2 * (384 * 1280 + 5 * 1280 + 1280 * 768)
    # the issue's figure: about 43% of W5's arithmetic for D_C=384, D_L=768
    assert factorised.flops_per_token() / adapter.flops_per_token() == pytest.approx(0.4304, abs=1e-4)
    for a in (adapter, factorised):  # one multiply-add per weight and token
        n_weights = sum(p.numel() for n, p in a.named_parameters() if n.endswith("weight"))
        assert a.flops_per_token() == 2 * n_weights


@pytest.mark.parametrize("window", [1, 3, 5])
def test_flops_per_token_matches_the_flop_counter(window):
    from alad_kit.models.cost import adapter_flops_measured

    adapter = AlignmentAdapter(32, 48, window=window, hidden=40, kind="factorised")
    assert adapter_flops_measured(adapter, 16) == adapter.flops_per_token()


def test_factorised_seeded_value_pinned():
    torch.manual_seed(0)
    adapter = AlignmentAdapter(4, 6, window=3, hidden=8, kind="factorised")
    out = adapter(torch.ones(1, 2, 4))
    assert out.shape == (1, 2, 6)
    assert out.sum().item() == pytest.approx(0.308969, abs=1e-4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(window=4), "odd"),
        (dict(window=0), "odd"),
        (dict(window=-3), "odd"),
        (dict(student_dim=0), "student_dim"),
        (dict(teacher_dim=-1), "teacher_dim"),
        (dict(hidden=0), "hidden"),
        (dict(kind="sparse"), "kind must be one of dense, factorised"),
    ],
)
def test_bad_config(kwargs, message):
    args = dict(student_dim=8, teacher_dim=8, window=3, hidden=16) | kwargs
    with pytest.raises(ValueError, match=message):
        AlignmentAdapter(**args)


def test_bad_inputs():
    adapter = AlignmentAdapter(8, 8, window=3, hidden=16)
    with pytest.raises(ValueError, match="does not match student_dim"):
        adapter(torch.randn(1, 4, 9))
    with pytest.raises(ValueError, match="attention_mask shape"):
        adapter(torch.randn(1, 4, 8), torch.ones(1, 5))
    with pytest.raises(ValueError, match=r"\(B, T, D_C\)"):
        adapter(torch.randn(4, 8))


@pytest.mark.parametrize("config, message", [
    ('{"student_dim": 4, "teacher_dim": 6', "not a valid adapter config (invalid JSON"),
    ('["student_dim", 4]', "not a valid adapter config (wants an object with keys"),
    ('{"student_dim": 4, "teacher_dim": 6, "evil": 1}', "not a valid adapter config (wants an object"),
    ('{"teacher_dim": 6}', "not a valid adapter config (wants an object"),
    ('{"student_dim": "4", "teacher_dim": 6}', "student_dim must be a positive integer, got '4'"),
    ('{"student_dim": 4, "teacher_dim": 6, "window": 2}', "window must be an odd integer"),
])
def test_a_corrupt_adapter_config_is_a_value_error_naming_the_file(tmp_path, config, message):
    AlignmentAdapter(4, 6, window=3, hidden=8).save_pretrained(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(config)
    with pytest.raises(ValueError, match=rf"{re.escape(CONFIG_NAME)}: .*{re.escape(message)}"):
        AlignmentAdapter.from_pretrained(tmp_path)


def test_damaged_or_mismatched_adapter_weights_are_a_value_error_naming_the_file(tmp_path):
    AlignmentAdapter(4, 6, window=3, hidden=8).save_pretrained(tmp_path)
    weights = tmp_path / WEIGHTS_NAME
    raw = bytearray(weights.read_bytes())
    raw[2] ^= 0xFF  # the header length: no longer a safetensors file
    weights.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"adapter\.safetensors: not a readable safetensors file"):
        AlignmentAdapter.from_pretrained(tmp_path)
    AlignmentAdapter(4, 6, window=5, hidden=8).save_pretrained(tmp_path / "w5")
    (tmp_path / "w5" / CONFIG_NAME).write_text('{"student_dim": 4, "teacher_dim": 6, "window": 3, '
                                                         '"hidden": 8}')
    with pytest.raises(ValueError, match=r"alad_adapter\.safetensors: tensor 'window_proj\.weight' has shape \[8, 4, 5\], "
                                         r"alad_adapter_config\.json says \[8, 4, 3\]"):
        AlignmentAdapter.from_pretrained(tmp_path / "w5")


@pytest.mark.parametrize("field", ["window", "hidden", "student_dim"])
def test_a_bool_is_no_size(field):
    sizes = {"student_dim": 4, "teacher_dim": 8, "window": 3, "hidden": 4} | {field: True}
    with pytest.raises(ValueError, match=f"{field} must be"):
        AlignmentAdapter(**sizes)


# --------------------------------------------------------------------------------------------------
# Folders written before kinds became classes (tests/fixtures/adapters_4012d99/README.md) load as they did.
BASE = Path(__file__).parent / "fixtures" / "adapters_4012d99"


def base_expected() -> dict:
    return json.loads((BASE / "expected.json").read_text())


@pytest.mark.parametrize("kind", KINDS)
def test_a_folder_written_before_kind_classes_loads_with_the_same_keys_and_outputs(kind):
    expected = base_expected()
    adapter = AlignmentAdapter.from_pretrained(BASE / kind).eval()
    assert adapter.config.kind == kind and adapter.kind is ADAPTER_KIND_CLASSES[kind]
    assert {k: list(v.shape) for k, v in adapter.state_dict().items()} == expected[f"{kind}/state_dict"]
    assert list(adapter.state_dict()) == list(expected[f"{kind}/state_dict"])  # same order too
    fresh = AlignmentAdapter(4, 6, window=3, hidden=8, kind=kind)  # and a new adapter has the same layout
    assert list(fresh.state_dict()) == list(adapter.state_dict())
    hidden, mask = torch.tensor(expected["hidden"]), torch.tensor(expected["mask"])
    with torch.no_grad():
        out = adapter(hidden, mask)
    # bit for bit on the machine that wrote them; the tolerance leaves room for another CPU's summation order
    torch.testing.assert_close(out, torch.tensor(expected[f"{kind}/fp32"]), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# The kinds are classes in a registry: a new kind is one class, and every choice follows it.


def test_the_registry_is_the_choices():
    from alad_kit.core.config import RUN_CHOICES

    assert tuple(ADAPTER_KIND_CLASSES) == tuple(ADAPTER_KINDS) == KINDS
    assert tuple(RUN_CHOICES["adapter_kind"]) == KINDS
    for name, cls in ADAPTER_KIND_CLASSES.items():
        assert issubclass(cls, AdapterKind) and cls.name == name
    with pytest.raises(ValueError, match="needs a new name, got 'dense'"):
        register_kind(type("Again", (AdapterKind,), {"name": "dense"}))


def test_windowed_pads_masks_and_orders_the_tokens():
    h = torch.arange(1.0, 6.0).reshape(1, 5, 1)  # tokens 1 .. 5
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    assert windowed(h, 3, mask).flatten().tolist() == [0, 1, 2, 3, 4, 0, 0]  # padding zeroed, n//2 zeros each side
    assert windowed(h, 1).flatten().tolist() == [1, 2, 3, 4, 5]


class Tied(AdapterKind):
    """A kind for the test: one matrix W for every position, W_1 · x_i = W · sum_k h_{i-n//2+k} + b."""

    name = "tied-test"

    @staticmethod
    def init(adapter):
        adapter.window_proj = torch.nn.Linear(adapter.config.student_dim, adapter.config.hidden)

    @staticmethod
    def forward(adapter, h, mask):
        padded, n, T = windowed(h, adapter.config.window, mask), adapter.config.window, h.shape[1]
        return adapter.window_proj(sum(padded[:, k : k + T] for k in range(n)))

    @staticmethod
    def as_linear(adapter):
        return adapter.window_proj.weight.repeat(1, adapter.config.window), adapter.window_proj.bias

    @staticmethod
    def multiply_adds(config):
        return config.student_dim * config.hidden


def test_a_new_kind_is_one_registered_class(tmp_path):
    from alad_kit.core.config import RUN_CHOICES, RunConfig

    register_kind(Tied)
    try:
        assert "tied-test" in RUN_CHOICES["adapter_kind"]
        assert RunConfig(task="ner", teacher="t", student="s", adapter_kind="tied-test").adapter_kind == "tied-test"
        torch.manual_seed(5)
        adapter = AlignmentAdapter(8, 12, window=3, hidden=16, kind="tied-test")
        h, mask = torch.randn(2, 6, 8), torch.ones(2, 6)
        mask[1, 4:] = 0
        torch.testing.assert_close(adapter(h, mask), concat_reference(adapter, h, mask), atol=1e-5, rtol=1e-5)
        assert adapter.flops_per_token() == 2 * (8 * 16 + 16 * 12)
        adapter.save_pretrained(tmp_path)
        assert torch.equal(AlignmentAdapter.from_pretrained(tmp_path)(h, mask), adapter(h, mask))
    finally:
        del ADAPTER_KIND_CLASSES["tied-test"]
    with pytest.raises(ValueError, match="kind must be one of dense, factorised, got 'tied-test'"):
        AlignmentAdapter(8, 12, kind="tied-test")
