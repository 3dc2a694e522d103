"""The embedding cache of frozen encoders (alad_kit.training.cache)."""

import copy
import errno
import json
from collections import namedtuple

import numpy as np
import pytest
import torch

from alad_kit.training.cache import EmbeddingCache, model_fingerprint

SENTENCES = ["The cat sat on the mat.", "Caching saves nine of ten teacher passes.", "Short."]


@pytest.fixture(scope="module")
def minilm():
    from alad_kit.models.zoo import load_encoder

    return load_encoder("minilm-l6")


@pytest.fixture(scope="module")
def tiny():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    return BertModel(config).eval()


IDS = [[2, 5, 7, 9, 3], [2, 11, 3], [2, 4, 4, 4, 4, 4, 3]]


def _entries(root):
    """Entries and temporary folders (lock files are the locks' business: filelock may keep them)."""
    return sorted(p.name for p in root.iterdir() if p.suffix != ".lock") if root.exists() else []


def test_second_get_is_a_hit_with_identical_arrays(tmp_path, tiny):
    cache = EmbeddingCache(tmp_path)
    first = cache.get(tiny, IDS, pad_token_id=0)
    again = EmbeddingCache(tmp_path)  # a new process: only the disk is shared
    second = again.get(tiny, IDS, pad_token_id=0)
    assert (cache.stats.misses, cache.stats.hits, again.stats.misses, again.stats.hits) == (1, 0, 0, 1)
    assert second.path == first.path and len(second) == len(IDS) and second.dim == 16
    assert np.array_equal(np.asarray(first.data), np.asarray(second.data))
    for i, row in enumerate(second.rows(range(len(IDS)))):
        assert row.shape == (len(IDS[i]), 16) and row.dtype == torch.float16
    padded = second.padded([1, 2], width=6)  # row 2 (7 tokens) is cut, row 1 (3 tokens) zero-padded
    assert padded.shape == (2, 6, 16)
    assert torch.equal(padded[0, :3], second.rows([1])[0].float()) and not padded[0, 3:].any()


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_padded_batches_equal_the_rows_one_by_one(tmp_path, tiny, dtype):
    """The one-gather read gives exactly the row-by-row batch: any order, repeats, cut and padded rows."""
    entry = EmbeddingCache(tmp_path).get(tiny, IDS, pad_token_id=0, dtype=dtype)
    for indices, width in (([2, 0, 1], 7), ([1, 1, 2], 4), ([0], 5), ([2, 1], 9)):
        expected = torch.zeros(len(indices), width, 16)
        for b, row in enumerate(entry.rows(indices)):
            expected[b, : min(width, len(row))] = row[:width].float()
        assert torch.equal(entry.padded(indices, width), expected), (indices, width)


def test_stats_count_hits_misses_and_bytes(tmp_path, tiny):
    cache = EmbeddingCache(tmp_path)
    cache.get(tiny, IDS, 0)
    cache.get(tiny, IDS, 0)
    cache.get(tiny, IDS[:2], 0)
    n_tokens = sum(map(len, IDS)) + sum(map(len, IDS[:2]))
    assert (cache.stats.hits, cache.stats.misses) == (1, 2)
    assert cache.stats.bytes_written == n_tokens * 16 * 2  # fp16
    assert set(cache.stats.as_dict()) == {"hits", "misses", "mb_written", "seconds_computing"}
    assert len(_entries(tmp_path)) == 2


def test_disabled_cache_recomputes(tmp_path, tiny):
    cache = EmbeddingCache(tmp_path, enabled=False)
    a, b = cache.get(tiny, IDS, 0), cache.get(tiny, IDS, 0)
    assert (cache.stats.hits, cache.stats.misses) == (0, 2)
    assert np.array_equal(np.asarray(a.data), np.asarray(b.data))


def test_key_changes_with_weights_and_ids(tiny):
    cache = EmbeddingCache("unused")
    base = cache.key(tiny, IDS)
    assert cache.key(copy.deepcopy(tiny), IDS) == base  # same weights, same key
    assert cache.key(tiny, IDS[:2]) != base
    assert cache.key(tiny, [IDS[0], IDS[2], IDS[1]]) != base
    other = copy.deepcopy(tiny)
    with torch.no_grad():  # a change deep inside (an L1-pruned or partly tuned copy keeps its embeddings)
        other.encoder.layer[0].attention.self.query.weight[3, 4] += 1e-3
    assert model_fingerprint(other) != model_fingerprint(tiny)
    assert cache.key(other, IDS) != base


def _flip(path, at=10):
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", ["flip embeddings", "truncate embeddings", "flip offsets", "bad meta.json",
                                    "meta without digests"])
def test_a_damaged_entry_is_rebuilt_never_used(tmp_path, tiny, damage):
    first = EmbeddingCache(tmp_path).get(tiny, IDS, 0)
    reference = np.asarray(first.data).copy()
    entry = first.path
    del first
    if damage == "flip embeddings":
        _flip(entry / "embeddings.f16")
    elif damage == "truncate embeddings":
        (entry / "embeddings.f16").write_bytes((entry / "embeddings.f16").read_bytes()[:-2])
    elif damage == "flip offsets":
        _flip(entry / "offsets.npy", at=-3)
    elif damage == "bad meta.json":
        (entry / "meta.json").write_text("{not json")
    else:  # an entry written without digests (or with them deleted) cannot be trusted
        meta = json.loads((entry / "meta.json").read_text())
        del meta["offsets_sha256"]
        (entry / "meta.json").write_text(json.dumps(meta))
    cache = EmbeddingCache(tmp_path)
    with pytest.warns(UserWarning, match="rebuilding"):
        again = cache.get(tiny, IDS, 0)
    assert (cache.stats.hits, cache.stats.misses) == (0, 1)
    assert np.array_equal(np.asarray(again.data), reference)
    assert again.offsets.tolist() == [0, 5, 8, 15]


def test_verify_false_in_meta_json_is_ignored(tmp_path, tiny):
    entry = EmbeddingCache(tmp_path).get(tiny, IDS, 0).path
    meta = json.loads((entry / "meta.json").read_text())
    (entry / "meta.json").write_text(json.dumps(meta | {"verify": False}))
    _flip(entry / "embeddings.f16")
    cache = EmbeddingCache(tmp_path)
    with pytest.warns(UserWarning, match="failed its checksum"):
        cache.get(tiny, IDS, 0)
    assert cache.stats.misses == 1


def test_not_enough_free_space_is_refused_up_front(tmp_path, tiny, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("alad_kit.training.cache.shutil.disk_usage", lambda path: usage(10**9, 10**9 - 100, 100))
    cache = EmbeddingCache(tmp_path / "c")
    with pytest.raises(OSError, match="not enough disk space"):
        cache.get(tiny, IDS, 0)
    assert _entries(tmp_path / "c") == []


@pytest.mark.parametrize("where", ["reserve", "write", "fsync"])
def test_disk_full_while_writing_is_an_oserror_and_leaves_nothing(tmp_path, tiny, monkeypatch, where):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "reserve":
        monkeypatch.setattr("alad_kit.training.cache.os.posix_fallocate", no_space)
    elif where == "write":
        monkeypatch.setattr("alad_kit.training.cache._reserve", lambda fd, n: None)
        monkeypatch.setattr("alad_kit.training.cache.np.ascontiguousarray", no_space)
    else:
        monkeypatch.setattr("alad_kit.training.cache.os.fsync", no_space)
    cache = EmbeddingCache(tmp_path / "c")
    with pytest.raises(OSError, match="disk full while writing") as caught:
        cache.get(tiny, IDS, 0)
    assert caught.value.errno == errno.ENOSPC
    assert _entries(tmp_path / "c") == []  # no entry, no .tmp folder
    assert cache.stats.bytes_written == 0
    assert not tiny.training  # the model's mode is restored


def test_the_cache_never_opens_a_writable_memmap(tmp_path, tiny, monkeypatch):
    real = np.memmap

    def read_only(filename, *args, mode="r+", **kwargs):
        assert mode == "r", f"writable memmap ({mode}) can SIGBUS on a full disk"
        return real(filename, *args, mode=mode, **kwargs)

    monkeypatch.setattr(np, "memmap", read_only)
    EmbeddingCache(tmp_path).get(tiny, IDS, 0)


def test_a_second_process_waits_for_the_builder_then_reuses_its_entry(tmp_path, tiny):
    """Two identical runs: the second blocks on the entry's lock while the first builds, then hits."""
    import subprocess
    import sys
    import time

    entry = tmp_path / EmbeddingCache(tmp_path).key(tiny, IDS)
    torch.save(tiny.state_dict(), tmp_path / "tiny.pt")
    script = f"""
import json, torch
from transformers import BertConfig, BertModel
from alad_kit.training.cache import EmbeddingCache
model = BertModel(BertConfig.from_dict({tiny.config.to_dict()!r})).eval()
model.load_state_dict(torch.load({str(tmp_path / "tiny.pt")!r}, weights_only=True))
cache = EmbeddingCache({str(tmp_path)!r})
print("ready", flush=True)
cache.get(model, {IDS!r}, 0)
print(json.dumps(cache.stats.as_dict()))
"""
    from alad_kit.core.locks import owned

    with owned(entry):  # we are "the first run", still building
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        assert proc.stdout.readline().strip() == "ready"  # imported, about to ask for the entry
        time.sleep(2)
        assert proc.poll() is None  # the second run waits
        EmbeddingCache(tmp_path)._build(entry, tiny, IDS, 0, 32, "cpu", "first")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "waiting for another process" in err
    stats = json.loads(out.strip().splitlines()[-1])
    assert (stats["hits"], stats["misses"]) == (1, 0)


def test_a_failed_forward_leaves_nothing_and_restores_train_mode(tmp_path, tiny, monkeypatch):
    model = copy.deepcopy(tiny).train()

    def broken(*args, **kwargs):
        raise MemoryError("simulated OOM")

    monkeypatch.setattr(model, "forward", broken)
    with pytest.raises(MemoryError):
        EmbeddingCache(tmp_path).get(model, IDS, 0)
    assert _entries(tmp_path) == [] and model.training


@pytest.mark.parametrize("when", ["while computing", "just before renaming"])
def test_another_process_publishing_the_same_entry_first_is_fine(tmp_path, tiny, monkeypatch, when):
    """Data-parallel ranks fill one cache at the same time: whoever finishes second keeps the first's entry."""

    model, other_cache, calls = copy.deepcopy(tiny), EmbeddingCache(tmp_path), []

    def other_rank_publishes():
        if not calls:
            calls.append(1)
            # in one process the entry's lock is already ours: publish the way a second rank's build would
            other_cache.stats.misses += 1
            other_cache._build(other_cache.root / other_cache.key(tiny, IDS), copy.deepcopy(tiny), IDS, 0, 32,
                               "cpu", "other rank")

    if when == "while computing":
        forward = model.forward
        model.forward = lambda *a, **k: other_rank_publishes() or forward(*a, **k)
    else:  # after our existence check, before our rename: the rename target is now a full folder
        from alad_kit.core.io import replace as real_replace

        def replace(src, dst):
            if str(src).endswith(".tmp") and not calls:
                other_rank_publishes()
            return real_replace(src, dst)

        monkeypatch.setattr("alad_kit.training.cache.replace", replace)
    cache = EmbeddingCache(tmp_path)
    got = cache.get(model, IDS, 0)
    assert calls and other_cache.stats.misses == 1 and cache.stats.misses == 1
    assert _entries(tmp_path) == [got.path.name]  # our temporary folder is gone
    expected = other_cache.get(tiny, IDS, 0)
    assert np.array_equal(np.asarray(got.data), np.asarray(expected.data))


def test_cached_values_equal_a_direct_forward(tmp_path, minilm):
    model, tokenizer = minilm
    ids = tokenizer(SENTENCES)["input_ids"]
    cached = EmbeddingCache(tmp_path).get(model, ids, tokenizer.pad_token_id, batch_size=2)
    with torch.no_grad():
        for i, row in enumerate(cached.rows(range(len(ids)))):
            direct = model(input_ids=torch.tensor([ids[i]])).last_hidden_state[0]
            torch.testing.assert_close(row.float(), direct, rtol=2e-3, atol=2e-3)  # fp16 storage


def test_phase2_epochs_cost_one_teacher_pass(tmp_path, minilm):
    from transformers import BertConfig, BertModel

    from alad_kit.data.demo import python_docs_corpus
    from alad_kit.training.phases import build_alignment_data

    _, tokenizer = minilm

    def encoder(width):
        torch.manual_seed(width)
        return BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=width, num_hidden_layers=1,
                                    num_attention_heads=2, intermediate_size=2 * width)).eval()

    teacher, student = encoder(24), encoder(16)
    calls = []
    forward = teacher.forward
    teacher.forward = lambda *a, **k: calls.append(1) or forward(*a, **k)
    texts, batch_size = python_docs_corpus()[:20], 8
    cache = EmbeddingCache(tmp_path)
    data = build_alignment_data(texts, student, tokenizer, teacher, tokenizer, cache, max_length=32,
                                batch_size=batch_size)
    one_pass = -(-len(texts) // batch_size)
    assert len(calls) == one_pass
    for epoch in range(10):
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(epoch)).tolist()
        for lo in range(0, len(order), 5):
            batch = data.make_batch(order[lo : lo + 5])
            assert batch["target"].shape[-1] == 24 and batch["student_hidden"].shape[-1] == 16
    assert len(calls) == one_pass  # ten epochs, still one teacher pass
    build_alignment_data(texts, student, tokenizer, teacher, tokenizer, cache, max_length=32)
    assert len(calls) == one_pass and cache.stats.hits == 2  # a second phase/run reuses both entries
