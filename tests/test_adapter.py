import pytest
import torch
from torch.nn import functional as F

from alad_kit import AlignmentAdapter


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


@pytest.mark.parametrize("window", [1, 3, 5, 7])
@pytest.mark.parametrize("dims", [(16, 24), (24, 16), (8, 8)])
def test_conv_equals_concat_reference(window, dims):
    torch.manual_seed(0)
    adapter = AlignmentAdapter(dims[0], dims[1], window=window, hidden=32)
    h = torch.randn(3, 9, dims[0])
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 2:] = 0
    out = adapter(h, mask)
    assert out.shape == (3, 9, dims[1])
    torch.testing.assert_close(out, concat_reference(adapter, h, mask), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(adapter(h), concat_reference(adapter, h, None), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("window", [1, 3, 5])
def test_locality(window):
    torch.manual_seed(1)
    adapter = AlignmentAdapter(8, 12, window=window, hidden=16)
    h = torch.randn(1, 11, 8)
    j = 5
    changed = h.clone()
    changed[0, j] += 3.0
    diff = (adapter(h) - adapter(changed)).abs().sum(-1)[0]
    affected = (diff > 1e-6).nonzero().flatten().tolist()
    assert affected == list(range(j - window // 2, j + window // 2 + 1))


def test_padding_never_leaks_into_real_tokens():
    torch.manual_seed(2)
    adapter = AlignmentAdapter(8, 8, window=5, hidden=16)
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


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(3)
    adapter = AlignmentAdapter(8, 12, window=3, hidden=16)
    adapter.save_pretrained(tmp_path / "a")
    loaded = AlignmentAdapter.from_pretrained(tmp_path / "a")
    assert loaded.config == adapter.config
    h = torch.randn(2, 5, 8)
    assert torch.equal(loaded(h), adapter(h))
    assert not list((tmp_path / "a").glob("*.tmp"))


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
    n_weights = sum(p.numel() for n, p in adapter.named_parameters() if n.endswith("weight"))
    assert adapter.flops_per_token() == 2 * n_weights


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(window=4), "odd"),
        (dict(window=0), "odd"),
        (dict(window=-3), "odd"),
        (dict(student_dim=0), "student_dim"),
        (dict(teacher_dim=-1), "teacher_dim"),
        (dict(hidden=0), "hidden"),
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
