"""Token pairing between student and teacher tokenizers (alad_kit.training.align)."""

import pytest
import torch

from alad_kit.training.align import UNPAIRED, gather_targets, pair_tokens

TEXTS = [
    "Tokenizers split words like unbelievably into pieces.",
    "Short one.",
    "The adapter maps student embeddings to teacher embeddings, token by token!",
]


@pytest.fixture(scope="module")
def minilm_tok():
    from transformers import AutoTokenizer

    from alad_kit.models.offline import offline_model_dir

    return AutoTokenizer.from_pretrained(offline_model_dir("minilm-l6"))


@pytest.fixture(scope="module")
def mpnet_tok():
    from transformers import AutoTokenizer

    from alad_kit.models.zoo import offline_model_dir

    return AutoTokenizer.from_pretrained(offline_model_dir("mpnet-base"))


@pytest.fixture(scope="module")
def tiny_tok(minilm_tok):
    """A genuinely different WordPiece vocabulary (200 pieces): far more, and differently cut, tokens."""
    from alad_kit.data.demo import python_docs_corpus

    return minilm_tok.train_new_from_iterator(python_docs_corpus()[:300], vocab_size=200)


def _real_positions(tokenizer, ids):
    special = set(tokenizer.all_special_ids)
    return [j for j, t in enumerate(ids) if t not in special]


def test_same_tokenizer_pairs_every_real_token_with_itself(minilm_tok):
    p = pair_tokens(minilm_tok, minilm_tok, TEXTS)
    assert len(p) == len(TEXTS) and p.exact_fraction == 1.0
    for ids, s2t in zip(p.student_input_ids, p.student_to_teacher):
        real = _real_positions(minilm_tok, ids)
        assert s2t[0] == UNPAIRED and s2t[-1] == UNPAIRED  # [CLS], [SEP]
        assert [s2t[j] for j in real] == real
        assert sum(t != UNPAIRED for t in s2t) == len(real)


def test_padding_is_unpaired_and_masked(minilm_tok):
    p = pair_tokens(minilm_tok, minilm_tok, TEXTS)
    width = max(map(len, p.student_input_ids)) + 3
    s2t, mask = p.masks([1, 0], pad_to=width)
    assert s2t.shape == mask.shape == (2, width)
    n_short = len(p.student_input_ids[1])
    assert (s2t[0, n_short:] == UNPAIRED).all() and not mask[0, n_short:].any()
    assert mask[0].sum() == len(_real_positions(minilm_tok, p.student_input_ids[1]))
    assert s2t[1, : len(p.student_to_teacher[0])].tolist() == p.student_to_teacher[0]


def test_minilm_and_mpnet_pair_exactly_despite_different_ids(minilm_tok, mpnet_tok):
    p = pair_tokens(minilm_tok, mpnet_tok, TEXTS)
    assert p.exact_fraction == 1.0
    for s_ids, t_ids, s2t in zip(p.student_input_ids, p.teacher_input_ids, p.student_to_teacher):
        assert s_ids[0] == minilm_tok.cls_token_id and t_ids[0] == mpnet_tok.cls_token_id
        assert s_ids[0] != t_ids[0]  # [CLS]=101 vs <s>=0: specials differ and are never paired
        real = _real_positions(minilm_tok, s_ids)
        assert real and all(s2t[j] == j for j in real)
        assert all(t_ids[s2t[j]] == s_ids[j] + 4 for j in real)  # same wordpieces, MPNet ids shifted by 4
        assert s2t[0] == s2t[-1] == UNPAIRED


def _overlaps(a, b):
    return min(a[1], b[1]) > max(a[0], b[0])


def test_different_tokenizer_pairs_by_character_overlap(minilm_tok, tiny_tok):
    p = pair_tokens(minilm_tok, tiny_tok, TEXTS)
    assert 0 < p.exact_fraction < 1
    kw = dict(return_offsets_mapping=True, truncation=True, max_length=128)
    for text, s_ids, t_ids, s2t in zip(TEXTS, p.student_input_ids, p.teacher_input_ids, p.student_to_teacher):
        assert len(t_ids) > len(s_ids)  # 200 pieces cut the text much finer
        s_off, t_off = minilm_tok(text, **kw)["offset_mapping"], tiny_tok(text, **kw)["offset_mapping"]
        real = _real_positions(minilm_tok, s_ids)
        assert all(s2t[j] != UNPAIRED for j in real)  # every real token finds a teacher counterpart
        for j in real:
            assert _overlaps(s_off[j], t_off[s2t[j]]), (text[slice(*s_off[j])], text[slice(*t_off[s2t[j]])])
            assert t_ids[s2t[j]] not in tiny_tok.all_special_ids


def test_pre_split_words(minilm_tok, mpnet_tok, tiny_tok):
    words = [t.split() for t in TEXTS]
    exact = pair_tokens(minilm_tok, mpnet_tok, words)
    assert exact.exact_fraction == 1.0
    assert exact.student_to_teacher == pair_tokens(minilm_tok, mpnet_tok, TEXTS).student_to_teacher
    # With a different vocabulary, pairs must stay inside the same word (offsets are per word here).
    p = pair_tokens(minilm_tok, tiny_tok, words)
    for i, w in enumerate(words):
        s_words = minilm_tok(w, is_split_into_words=True).word_ids()
        t_words = tiny_tok(w, is_split_into_words=True).word_ids()
        pairs = [(j, t) for j, t in enumerate(p.student_to_teacher[i]) if t != UNPAIRED]
        assert len(pairs) == sum(x is not None for x in s_words)
        assert all(s_words[j] == t_words[t] for j, t in pairs)


def test_truncated_teacher_leaves_student_tokens_unpaired(minilm_tok, tiny_tok):
    text = TEXTS[2]
    p = pair_tokens(minilm_tok, tiny_tok, [text], max_length=12)
    s_ids, t_ids, s2t = p.student_input_ids[0], p.teacher_input_ids[0], p.student_to_teacher[0]
    assert len(s_ids) == len(t_ids) == 12
    paired = [t for t in s2t if t != UNPAIRED]
    assert paired and max(paired) < len(t_ids) - 1  # never the teacher's [SEP], never past its end
    real = _real_positions(minilm_tok, s_ids)
    assert any(s2t[j] == UNPAIRED for j in real)  # text the teacher cut off has no target
    # The unpaired real tokens are exactly the trailing ones (beyond the teacher's last character).
    first_lost = min(j for j in real if s2t[j] == UNPAIRED)
    assert all(s2t[j] == UNPAIRED for j in real if j >= first_lost)


def test_empty_texts_rejected(minilm_tok):
    with pytest.raises(ValueError, match="no texts"):
        pair_tokens(minilm_tok, minilm_tok, [])


def test_gather_targets_picks_paired_rows_and_zeros_the_rest():
    rows = [torch.arange(4 * 3, dtype=torch.float16).view(4, 3), 100 + torch.arange(2 * 3.0).view(2, 3)]
    s2t = torch.tensor([[UNPAIRED, 2, 1, UNPAIRED], [1, UNPAIRED, UNPAIRED, UNPAIRED]])
    out = gather_targets(rows, s2t)
    assert out.shape == (2, 4, 3) and out.dtype == torch.float32
    assert torch.equal(out[0, 1], rows[0][2].float()) and torch.equal(out[0, 2], rows[0][1].float())
    assert torch.equal(out[1, 0], rows[1][1])
    assert not out[0, [0, 3]].any() and not out[1, 1:].any()
