"""The seed statistics against numbers computed independently (by hand from their definitions)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from densemtl.analysis.stats import mean_std, paired_test

A = [0.512, 0.498, 0.530, 0.505, 0.521]
B = [0.490, 0.492, 0.511, 0.499, 0.500]


def _t_by_hand(a: list[float], b: list[float]) -> tuple[float, float]:
    d = np.subtract(a, b)
    n = len(d)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(n))
    return float(t), float(2 * stats.t.sf(abs(t), n - 1))


def _sign_flip_by_hand(a: list[float], b: list[float]) -> float:
    d = np.subtract(a, b)
    observed = abs(d.mean())
    flips = [abs((d * np.array(s)).mean()) for s in itertools.product((1, -1), repeat=len(d))]
    return sum(f >= observed - 1e-12 for f in flips) / len(flips)


def test_mean_std_is_the_sample_std() -> None:
    mean, std = mean_std([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3)
    assert std == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2))
    assert math.isnan(mean_std([3.0])[1]) and mean_std([3.0])[0] == 3.0


def test_paired_test_matches_the_formulas() -> None:
    result = paired_test(A, B)
    t, p_t = _t_by_hand(A, B)
    assert result["n"] == 5
    assert result["mean_diff"] == pytest.approx(np.mean(np.subtract(A, B)))
    assert result["t"] == pytest.approx(t) and result["p_t"] == pytest.approx(p_t)
    assert result["p_perm"] == pytest.approx(_sign_flip_by_hand(A, B))
    assert result["p_perm"] == pytest.approx(2 / 32)  # every difference positive: the two extreme patterns
    assert result["significant"] == (p_t < 0.05)


def test_few_seeds_are_reported_honestly() -> None:
    two = paired_test([0.50, 0.52], [0.49, 0.50])
    assert two["p_perm"] == pytest.approx(0.5)  # the smallest p two seeds allow
    assert two["p_t"] == pytest.approx(_t_by_hand([0.50, 0.52], [0.49, 0.50])[1])
    mixed = paired_test([0.50, 0.48, 0.51], [0.49, 0.50, 0.50])
    assert mixed["p_perm"] == pytest.approx(_sign_flip_by_hand([0.50, 0.48, 0.51], [0.49, 0.50, 0.50]))
    assert not mixed["significant"]
    constant = paired_test([0.5, 0.6], [0.4, 0.5])  # identical differences: t undefined, not "p = 0"
    assert math.isnan(constant["p_t"]) and not constant["significant"]
    one = paired_test([0.5], [0.4])
    assert math.isnan(one["p_t"]) and one["p_perm"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        paired_test([0.1, 0.2], [0.1])
