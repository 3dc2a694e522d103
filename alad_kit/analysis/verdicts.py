"""The verdict rule of a claim: paired differences over seeds (or bench repeats), a t test, a verdict.

For n paired measurements ``d_k = a_k - b_k`` (or ``a_k / b_k`` for ratios) with mean ``m`` and standard error
``se = std(d, ddof=1) / sqrt(n)``, and ``t*`` the two-sided 95% critical value of Student's t with n - 1 degrees
of freedom (4.30 for 3 seeds, 2.78 for 5, 2.45 for 7 repeats):

    greater        t = m / se                       confirmed if t > t*, refuted if t < -t*
    at_least thr   t = (m - thr) / se               the same rule
    at_most thr    t = (thr - m) / se               the same rule
    equivalent ±M  two one-sided tests (TOST):      confirmed if both t_low = (m + M) / se and
                                                    t_high = (M - m) / se exceed the one-sided 95% value
                                                    (the 90% interval lies inside ±M); refuted if
                                                    (|m| - M) / se > t* (surely outside the margin);
                                                    inconclusive otherwise

``p`` is the two-sided p value of ``t`` (for TOST: the larger of the two one-sided p values). With fewer than two
measurements there is no standard error, and the verdict is inconclusive. Measurements without noise (sizes,
FLOPs: ``exact``) are compared with their threshold directly and carry no t or p. A standard error of 0 with
n >= 2 (every pair differs by the same amount) makes |t| infinite: the sign decides.
"""

from __future__ import annotations

import math

from scipy import stats

TESTS = ("greater", "at_most", "at_least", "equivalent")
VERDICTS = ("confirmed", "refuted", "inconclusive")
ALPHA = 0.05  # two-sided level of every score claim; TOST uses two one-sided tests at ALPHA each


def t_critical(n: int, two_sided: bool = True) -> float:
    """Student's t quantile for n paired measurements (n - 1 degrees of freedom) at level ALPHA."""
    if n < 2:
        raise ValueError(f"t_critical: needs at least 2 measurements, got {n}")
    return float(stats.t.ppf(1 - ALPHA / 2 if two_sided else 1 - ALPHA, n - 1))


def paired(diffs: list[float]) -> tuple[float | None, float | None]:
    """Mean and standard error of paired differences (SE None below two values)."""
    if not diffs:
        return None, None
    mean = sum(diffs) / len(diffs)
    if len(diffs) < 2:
        return mean, None
    var = sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)
    return mean, math.sqrt(var / len(diffs))


def _t(num: float, se: float) -> float:
    return num / se if se > 0 else math.copysign(math.inf, num) if num else 0.0


def _p_two_sided(t: float, n: int) -> float:
    return float(2 * stats.t.sf(abs(t), n - 1))


def judge(test: str, mean: float | None, se: float | None, n: int, threshold: float = 0.0,
          margin: float | None = None, exact: bool = False) -> dict:
    """``{"verdict", "t", "p", "df"}`` of one claim (see the module docstring); t/p/df None where undefined."""
    if test not in TESTS:
        raise ValueError(f"judge: test must be one of {', '.join(TESTS)}, got {test!r}")
    none = {"t": None, "p": None, "df": None}
    if mean is None:
        return {"verdict": "inconclusive", **none}
    if exact:
        side = _side(test, mean, threshold, margin)
        return {"verdict": "confirmed" if side > 0 else "refuted", **none}
    if n < 2 or se is None:
        return {"verdict": "inconclusive", **none}
    if test == "equivalent":
        return _tost(mean, se, n, _margin(margin))
    t = _t(_side(test, mean, threshold, margin), se)
    crit = t_critical(n)
    verdict = "confirmed" if t > crit else "refuted" if t < -crit else "inconclusive"
    return {"verdict": verdict, "t": t, "p": _p_two_sided(t, n), "df": n - 1}


def _side(test: str, mean: float, threshold: float, margin: float | None) -> float:
    """> 0 on the claim's side."""
    if test == "at_most":
        return threshold - mean
    if test == "equivalent":
        return _margin(margin) - abs(mean)
    return mean - threshold


def _margin(margin: float | None) -> float:
    if margin is None or margin <= 0:
        raise ValueError(f"an equivalence claim needs a positive margin, got {margin!r}")
    return margin


def _tost(mean: float, se: float, n: int, margin: float) -> dict:
    t_low, t_high = _t(mean + margin, se), _t(margin - mean, se)
    p = max(float(stats.t.sf(t_low, n - 1)), float(stats.t.sf(t_high, n - 1)))
    if min(t_low, t_high) > t_critical(n, two_sided=False):
        verdict = "confirmed"
    elif _t(abs(mean) - margin, se) > t_critical(n):
        verdict = "refuted"
    else:
        verdict = "inconclusive"
    return {"verdict": verdict, "t": min(t_low, t_high), "p": p, "df": n - 1}
