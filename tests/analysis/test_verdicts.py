"""The verdict rule on hand-made numbers: t critical values, the paired test, TOST, the edge cases."""

import math

import pytest

from alad_kit.analysis.verdicts import judge, paired, t_critical


def test_t_critical_values_of_the_issue():
    assert t_critical(3) == pytest.approx(4.303, abs=1e-3)
    assert t_critical(5) == pytest.approx(2.776, abs=1e-3)
    assert t_critical(5, two_sided=False) == pytest.approx(2.132, abs=1e-3)
    with pytest.raises(ValueError, match="at least 2"):
        t_critical(1)


def test_paired_mean_and_standard_error():
    assert paired([]) == (None, None)
    assert paired([0.5]) == (0.5, None)
    mean, se = paired([1.0, 2.0, 3.0])
    assert mean == 2.0 and se == pytest.approx(1 / math.sqrt(3))


def test_greater_reports_t_p_and_degrees_of_freedom():
    out = judge("greater", 0.0098, 0.0025, 3)  # t 3.92: the old rule (> 2 SE) said confirmed
    assert out["verdict"] == "inconclusive" and out["df"] == 2
    assert out["t"] == pytest.approx(3.92) and out["p"] == pytest.approx(0.0593, abs=1e-3)
    assert judge("greater", 0.0098, 0.0025, 5)["verdict"] == "confirmed"  # the same effect with 5 seeds


@pytest.mark.parametrize(
    "mean, se, n, verdict",
    [
        (0.0, 0.001, 5, "confirmed"),  # 90% interval ±0.0021 inside ±0.01
        (0.008, 0.001, 5, "inconclusive"),  # t_high = (0.01 - 0.008) / 0.001 = 2.0 < t(0.95, 4) = 2.13
        (-0.009, 0.0004, 5, "confirmed"),  # t_low 2.5 > 2.13
        (-0.02, 0.002, 5, "refuted"),  # (0.02 - 0.01) / 0.002 = 5 > 2.78: surely outside the margin
        (0.02, 0.002, 5, "refuted"),  # equivalence is two-sided
        (-0.009, 0.003, 3, "inconclusive"),  # absence of evidence is not equivalence
        (-0.009, None, 1, "inconclusive"),
    ],
)
def test_equivalence_by_two_one_sided_tests(mean, se, n, verdict):
    out = judge("equivalent", mean, se, n, margin=0.01)
    assert out["verdict"] == verdict
    if se is not None:
        assert 0.0 <= out["p"] <= 1.0


def test_tost_p_is_the_larger_one_sided_p():
    out = judge("equivalent", 0.002, 0.002, 4, margin=0.01)  # t_low 6, t_high 4, 3 degrees of freedom
    assert out["t"] == pytest.approx(4.0) and out["p"] == pytest.approx(0.01400, abs=1e-4)
    assert out["verdict"] == "confirmed"


def test_thresholds_and_exact_measurements():
    assert judge("at_least", 0.75, 0.01, 7, threshold=0.8)["verdict"] == "refuted"
    assert judge("at_most", 3.17, None, 0, threshold=4.0, exact=True) == {
        "verdict": "confirmed", "t": None, "p": None, "df": None}
    assert judge("at_most", 0.43, None, 3, threshold=0.5, exact=True)["verdict"] == "confirmed"


def test_zero_standard_error_decides_by_sign():
    assert judge("greater", -0.01, 0.0, 3)["verdict"] == "refuted"
    assert judge("greater", 0.0, 0.0, 3)["verdict"] == "inconclusive"


def test_bad_tests_and_margins_are_refused():
    with pytest.raises(ValueError, match="test must be one of"):
        judge("not_worse", 0.1, 0.1, 3)
    with pytest.raises(ValueError, match="positive margin"):
        judge("equivalent", 0.1, 0.1, 3)
