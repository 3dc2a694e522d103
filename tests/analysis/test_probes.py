import numpy as np
import pandas as pd
import pytest
import torch

from alad_kit.adapter import AlignmentAdapter
from alad_kit.analysis import probes
from alad_kit.core import rundir

# ---------------------------------------------------------------------------------------------- errors


def test_token_errors_known_values():
    adapted = np.array([[1.0, 0.0], [1.0, 2.0], [3.0, 4.0]])
    teacher = np.array([[0.0, 1.0], [1.0, 2.0], [-3.0, -4.0]])
    mse, cosine = probes.token_errors(adapted, teacher)
    np.testing.assert_allclose(mse, [1.0, 0.0, (36 + 64) / 2])
    np.testing.assert_allclose(cosine, [0.0, 1.0, -1.0])


def test_token_errors_batched_with_mask_and_tensors():
    rng = np.random.default_rng(0)
    a, t = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    mse, cosine = probes.token_errors(torch.tensor(a, requires_grad=True), torch.tensor(t), mask)
    assert mse.shape == cosine.shape == (2, 3)
    assert np.isnan(mse[0, 2]) and np.isnan(cosine[1, 1]) and np.isnan(mse[1, 2])
    np.testing.assert_allclose(mse[0, 0], ((a[0, 0] - t[0, 0]) ** 2).mean())
    cos = a[1, 0] @ t[1, 0] / np.linalg.norm(a[1, 0]) / np.linalg.norm(t[1, 0])
    np.testing.assert_allclose(cosine[1, 0], cos)


def test_token_errors_rejects_bad_shapes():
    with pytest.raises(ValueError, match="adapted shape"):
        probes.token_errors(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="mask shape"):
        probes.token_errors(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), mask=np.ones((2, 4)))


def _frame(phase, scale, tags=True):
    tokens = [["the", "cat", "sat"], ["dogs", "bark"]]
    tag_lists = [["DET", "NOUN", "VERB"], ["NOUN", "VERB"]] if tags else None
    teacher = [np.zeros((3, 4)), np.zeros((2, 4))]
    adapted = [np.full((3, 4), scale) + np.arange(3)[:, None], np.full((2, 4), scale)]
    return probes.probe_frame(tokens, tag_lists, adapted, teacher, phase)


def test_probe_frame_rows_and_columns():
    df = _frame("after_phase1", 1.0)
    assert list(df.columns) == list(probes.PROBE_COLUMNS)
    assert list(df["sentence"]) == [0, 0, 0, 1, 1]
    assert list(df["position"]) == [0, 1, 2, 0, 1]
    assert list(df["token"]) == ["the", "cat", "sat", "dogs", "bark"]
    np.testing.assert_allclose(df["mse"], [1.0, 4.0, 9.0, 1.0, 1.0])
    assert (_frame("x", 1.0, tags=False)["tag"] == "").all()


def test_probe_frame_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="sentence 0 has 2 tokens"):
        probes.probe_frame([["a", "b"]], None, [np.zeros((3, 4))], [np.zeros((3, 4))], "p")
    with pytest.raises(ValueError, match="1 token lists, 2 adapted"):
        probes.probe_frame([["a"]], None, [np.zeros((1, 4))] * 2, [np.zeros((1, 4))] * 2, "p")


def test_aggregate_orders_phases_and_never_mixes_them():
    df = pd.concat([_frame("after_phase1", 0.5), _frame("before_phase1", 2.0)], ignore_index=True)
    by_tag = probes.aggregate(df, "tag")
    assert list(by_tag.columns) == ["phase", "tag", "mse", "cosine", "tokens"]
    assert list(by_tag["phase"]) == ["before_phase1"] * 3 + ["after_phase1"] * 3  # training, not alphabetical
    noun = by_tag[(by_tag.phase == "before_phase1") & (by_tag.tag == "NOUN")]
    assert noun["tokens"].item() == 2
    np.testing.assert_allclose(noun["mse"].item(), (9.0 + 4.0) / 2)  # cat: (2+1)^2, dogs: 2^2
    summary = probes.phase_summary(df)
    assert list(summary["phase"]) == ["before_phase1", "after_phase1"]
    assert summary["mse"].iloc[0] > summary["mse"].iloc[1]
    by_position = probes.aggregate(df[df.phase == "after_phase1"], "position")
    assert list(by_position["position"]) == [0, 1, 2] and "phase" not in by_position.columns
    with pytest.raises(ValueError, match="unknown column"):
        probes.aggregate(df, "nope")


# ------------------------------------------------------------------------------------------------- CKA


def _cka_reference(x, y):
    """CKA from its HSIC definition with the centring matrix H (independent of the implementation)."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, ell = x @ x.T, y @ y.T
    hsic = lambda a, b: np.trace(a @ h @ b @ h)  # noqa: E731
    return hsic(k, ell) / np.sqrt(hsic(k, k) * hsic(ell, ell))


@pytest.mark.parametrize("n", [10, 80])  # Gram form (N < D) and feature form (N >= D)
def test_linear_cka_matches_hsic_definition(n):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 20))
    y = x[:, :12] @ rng.normal(size=(12, 7)) + 0.5 * rng.normal(size=(n, 7))  # different width
    np.testing.assert_allclose(probes.linear_cka(x, y), _cka_reference(x, y), rtol=1e-10)


def test_linear_cka_invariances():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 16))
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    assert probes.linear_cka(x, x) == pytest.approx(1.0)
    assert probes.linear_cka(x, 3.0 * x @ q + 5.0) == pytest.approx(1.0)
    assert probes.linear_cka(x, rng.normal(size=(50, 16))) < 0.6
    with pytest.raises(ValueError, match="equal N"):
        probes.linear_cka(x, x[:10])
    with pytest.raises(ValueError, match="zero variance"):
        probes.linear_cka(x, np.ones((50, 3)))


def test_cka_matrix_symmetric_with_unit_diagonal():
    rng = np.random.default_rng(3)
    teacher = [rng.normal(size=(6, 8)), rng.normal(size=(4, 8))]
    adapted = [t + 0.1 * rng.normal(size=t.shape) for t in teacher]
    m = probes.cka_matrix({"student": rng.normal(size=(10, 5)), "adapted": adapted, "teacher": teacher})
    assert list(m.index) == list(m.columns) == ["student", "adapted", "teacher"]
    np.testing.assert_allclose(np.diag(m), 1.0)
    np.testing.assert_allclose(m.to_numpy(), m.to_numpy().T)
    assert m.loc["adapted", "teacher"] > 0.9 > m.loc["student", "teacher"]


# ------------------------------------------------------------------------------------------------ UMAP


@pytest.fixture(scope="module")
def umap_inputs():
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(3, 16)) * 4  # three well separated word clusters
    teacher = np.concatenate([c + rng.normal(size=(20, 16)) for c in centres])
    adapted = teacher + 0.05 * rng.normal(size=teacher.shape)
    student = rng.normal(size=(60, 8))
    tokens = [f"w{i}" for i in range(60)]
    tags = [["A", "B", "C"][i // 20] for i in range(60)]
    embeddings = {"teacher": teacher, "adapted": adapted, "student": student}
    df = probes.umap_projection(embeddings, tokens, tags, n_neighbors=8, seed=0)
    return embeddings, tokens, tags, df


def test_umap_projection_layout(umap_inputs):
    _, tokens, _, df = umap_inputs
    assert list(df.columns) == list(probes.UMAP_COLUMNS)
    assert len(df) == 180 and df["source"].value_counts().to_dict() == {
        "teacher": 60,
        "adapted": 60,
        "student": 60,
    }
    spaces = df.groupby("source")["space"].first().to_dict()
    assert spaces == {"teacher": "teacher+adapted", "adapted": "teacher+adapted", "student": "student"}
    assert list(df.loc[df.source == "adapted", "token"]) == tokens
    assert list(df.loc[df.source == "teacher", "index"]) == list(range(60))
    assert np.isfinite(df[["x", "y"]].to_numpy()).all()


def test_umap_projection_keeps_aligned_pairs_close_and_is_seeded(umap_inputs):
    embeddings, tokens, tags, df = umap_inputs
    t = df[df.source == "teacher"][["x", "y"]].to_numpy()
    a = df[df.source == "adapted"][["x", "y"]].to_numpy()
    paired = np.linalg.norm(t - a, axis=1).mean()
    shuffled = np.linalg.norm(t - a[np.random.default_rng(0).permutation(60)], axis=1).mean()
    assert paired < 0.5 * shuffled
    again = probes.umap_projection(embeddings, tokens, tags, n_neighbors=8, seed=0)
    np.testing.assert_allclose(again[["x", "y"]].to_numpy(), df[["x", "y"]].to_numpy())


def test_umap_projection_rejects_bad_inputs():
    with pytest.raises(ValueError, match="share the teacher space"):
        probes.umap_projection({"teacher": np.zeros((10, 4)), "adapted": np.zeros((10, 5))})
    with pytest.raises(ValueError, match="expected"):
        probes.umap_projection({"teacher": np.zeros((10, 4)), "adapted": np.zeros((9, 4))})
    with pytest.raises(ValueError, match="3 tokens for 10"):
        probes.umap_projection({"teacher": np.zeros((10, 4))}, tokens=["a", "b", "c"])


# ------------------------------------------------------------------------------------- real encoders


@pytest.fixture(scope="module")
def minilm():
    from transformers import AutoModel, AutoTokenizer

    from alad_kit.models.offline import offline_model_dir

    return AutoModel.from_pretrained(offline_model_dir("minilm-l6")), AutoTokenizer.from_pretrained(offline_model_dir("minilm-l6"))


def test_embed_tokens_takes_first_subword_of_each_word(minilm):
    model, tok = minilm
    torch.manual_seed(0)
    adapter = AlignmentAdapter(384, 384, window=3, hidden=32)
    sentences = ["Wonderfulness unbelievable here", ["Berlin", "is", "big", "."]]
    out = probes.embed_tokens(model, tok, adapter, sentences)
    assert out.words == [["Wonderfulness", "unbelievable", "here"], ["Berlin", "is", "big", "."]]
    assert [h.shape for h in out.hidden] == [(3, 384), (4, 384)]
    assert [a.shape for a in out.adapted] == [(3, 384), (4, 384)]
    enc = tok(["Wonderfulness", "unbelievable", "here"], is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        full = model(**enc).last_hidden_state[0]
        adapted_full = adapter(full[None])[0]
    first = [enc.word_ids().index(w) for w in range(3)]
    assert first[1] - first[0] > 1  # "Wonderfulness" really is split, so the choice of position matters
    np.testing.assert_allclose(out.hidden[0], full[first].numpy(), atol=1e-5)
    np.testing.assert_allclose(out.adapted[0], adapted_full[first].numpy(), atol=1e-5)


def test_embed_tokens_truncation_drops_trailing_words(minilm):
    model, tok = minilm
    out = probes.embed_tokens(model, tok, None, ["one two three four five six seven"], max_length=5)
    assert out.words == [["one", "two", "three"]] and out.adapted is None and out.hidden[0].shape == (3, 384)
    with pytest.raises(ValueError, match="no words"):
        probes.embed_tokens(model, tok, None, ["fine", "   "])


def test_embed_for_probes_student_equals_teacher(minilm):
    model, tok = minilm
    torch.manual_seed(0)
    adapter = AlignmentAdapter(384, 384, window=1, hidden=32)
    texts = ["the cat sat on the mat", "a dog barked loudly at night", "rain falls in spring"]
    inputs = probes.embed_for_probes(model, tok, adapter, model, tok, texts)
    assert [len(w) for w in inputs.words] == [6, 6, 4]
    for s, t in zip(inputs.student, inputs.teacher):
        np.testing.assert_allclose(s, t, atol=1e-6)
    matrix = probes.cka_matrix(inputs.as_dict())
    assert matrix.loc["student", "teacher"] == pytest.approx(1.0)
    frame = probes.probe_frame(inputs.words, None, inputs.adapted, inputs.teacher, "before_phase1")
    assert len(frame) == 16 and (frame["mse"] > 0).all()
    with pytest.raises(ValueError, match="teacher's hidden size is 384"):
        probes.embed_for_probes(model, tok, AlignmentAdapter(384, 64, 1, 8), model, tok, texts[:1])


# ------------------------------------------------------------------------------------------------ files


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_run_frame_round_trip(tmp_path, fmt):
    df = probes.probe_frame(
        [["NA", "null", "x"]], None, [np.ones((3, 2))], [np.zeros((3, 2))], "after_phase2"
    )
    path = probes.save_run_frame(df, tmp_path, fmt=fmt)
    assert path.name == f"probes.{fmt}" and not list(tmp_path.glob("*.tmp"))
    back = probes.load_run_frame(tmp_path)
    assert list(back["token"]) == ["NA", "null", "x"] and list(back["tag"]) == ["", "", ""]
    np.testing.assert_allclose(back["mse"], df["mse"])
    assert probes.load_run_frame(tmp_path, rundir.UMAP_STEM) is None


def test_run_frame_replaces_the_other_format(tmp_path, monkeypatch):
    old = probes.probe_frame([["old"]], None, [np.ones((1, 2))], [np.zeros((1, 2))], "p")
    new = probes.probe_frame([["new"]], None, [np.ones((1, 2))], [np.zeros((1, 2))], "p")
    probes.save_run_frame(old, tmp_path, fmt="parquet")
    assert probes.save_run_frame(new, tmp_path).name == "probes.csv"  # default: CSV, parquet removed
    assert not (tmp_path / "probes.parquet").exists()
    probes.save_run_frame(old, tmp_path, fmt="parquet")

    def no_engine(*args, **kwargs):
        raise ImportError("no parquet engine")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", no_engine)
    path = probes.save_run_frame(new, tmp_path)  # falls back to CSV and drops the stale parquet
    assert path.name == "probes.csv" and not (tmp_path / "probes.parquet").exists()
    assert list(probes.load_run_frame(tmp_path)["token"]) == ["new"]
    with pytest.raises(ValueError, match="fmt must be"):
        probes.save_run_frame(new, tmp_path, fmt="json")


def test_token_geometry_measures_anisotropy_and_spread():
    from alad_kit.analysis.probes import token_geometry

    same_way = [np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])]  # all tokens along one axis
    opposite = [np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([[5.0, 5.0]])]  # 1-token sentence skipped
    g = token_geometry(same_way)
    assert g["mean_pairwise_cosine"] == pytest.approx(1.0)
    assert g["mean_norm"] == pytest.approx(2.0) and g["mean_dim_std"] == pytest.approx(np.std([1, 2, 3]) / 2)
    g = token_geometry(opposite)
    assert (g["mean_pairwise_cosine"], g["sentences"]) == (pytest.approx(-1.0), 1)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        token_geometry([np.ones((1, 4))])
    with pytest.raises(ValueError, match=r"\(T, D\) arrays"):
        token_geometry([np.ones(4)])
