"""Per-seed scores, row summaries, the seed figure and the claims table of a study, on hand-made runs."""

import math

import pytest
from test_claims import write_run  # same folder: pytest puts it on sys.path

from alad_kit.analysis.claims import claims_json, compute_claims
from alad_kit.analysis.study_view import claims_frame, row_summary, seed_figure, seed_scores


@pytest.fixture
def study(tmp_path):
    root = tmp_path / "ner-2l"
    for seed, (aligned, random) in enumerate([(0.30, 0.20), (0.34, 0.22), (0.32, 0.27)]):
        write_run(root, "frozen-w5", seed, aligned, window=5)
        write_run(root, "random-frozen-w5", seed, random, window=5)
    return tmp_path


def test_seed_scores_has_one_line_per_run_in_table_units(study):
    scores = seed_scores(study)
    assert len(scores) == 6
    assert set(scores["row"]) == {"frozen-w5", "random-frozen-w5"}
    aligned = scores[scores["row"] == "frozen-w5"].sort_values("seed")
    assert aligned["value"].tolist() == pytest.approx([30.0, 34.0, 32.0])  # NER F1 x100
    assert set(scores["metric"]) == {"f1_overall"}


def test_row_summary_gives_mean_std_and_standard_error_best_first(study):
    summary = row_summary(seed_scores(study))
    best = summary.iloc[0]
    assert best["row"] == "frozen-w5"
    assert best["mean"] == pytest.approx(32.0)
    assert best["std"] == pytest.approx(2.0)
    assert best["se"] == pytest.approx(2.0 / math.sqrt(3))
    assert best["n"] == 3


def test_seed_figure_shows_every_seed_and_the_means(study):
    fig = seed_figure(seed_scores(study))
    seeds, means = fig.data
    assert len(seeds.x) == 6 and len(means.x) == 2
    assert list(fig.layout.yaxis.categoryarray) == ["random-frozen-w5", "frozen-w5"]  # best on top
    assert list(means.error_x.array) == pytest.approx([math.sqrt(13) / math.sqrt(3), 2.0 / math.sqrt(3)])


def test_seed_figure_refuses_an_empty_study(tmp_path):
    with pytest.raises(ValueError, match="no runs"):
        seed_figure(seed_scores(tmp_path))


def test_claims_frame_reads_the_written_claims(study):
    (study / "claims.json").write_text(claims_json(compute_claims(study)))
    frame = claims_frame(study)
    c6 = frame[frame["id"] == "C6"].iloc[0]
    assert (c6["a"], c6["b"], c6["n_seeds"]) == ("frozen-w5", "random-frozen-w5", 3)
    assert c6["delta_mean"] == pytest.approx((0.10 + 0.12 + 0.05) / 3)
    assert c6["verdict"] == "confirmed"


def test_claims_frame_names_the_file_it_cannot_read(tmp_path):
    (tmp_path / "claims.json").write_text("{not json")
    with pytest.raises(ValueError, match="claims.json"):
        claims_frame(tmp_path)
