"""Seed statistics for method comparisons: mean ± sample std, and paired tests across seeds.

Two runs of the same recipe with different seeds differ by about a point of mIoU, so one run per
method cannot rank methods. A comparison trains every method with the same seeds and compares each
method with a reference *paired by seed* (seed ``s`` of method A against seed ``s`` of the
reference, which drew the same data order and augmentations), which removes the part of the
seed-to-seed variance the two runs share.

Two tests of the mean paired difference ``d_s = a_s - b_s``, both two-sided:

* the **paired t-test** (``scipy.stats.ttest_rel``, Student 1908): assumes the ``d_s`` are
  independent draws from a normal distribution; ``n - 1`` degrees of freedom. It is the one that
  drives the significance marks, because it is the only one of the two that can reach p < 0.05 with
  2-5 seeds.
* the **exact sign-flip permutation test** (``scipy.stats.permutation_test``, paired ``"samples"``
  permutations, all ``2^n`` sign patterns): assumes only that the ``d_s`` are symmetric about 0 under
  the null. Its smallest possible p is ``2 / 2^n`` (0.5 with 2 seeds, 0.25 with 3), so with few seeds it
  can never reject: it is reported to show how much the t-test's normality assumption carries.

With 2-3 seeds either test has low power: "not significant" means "not shown", not "equal".
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ALPHA", "mean_std", "paired_test"]

ALPHA = 0.05


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and *sample* standard deviation (``ddof=1``) of ``values``; std is NaN for one value."""
    array = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if array.size == 0:
        return math.nan, math.nan
    std = float(array.std(ddof=1)) if array.size > 1 else math.nan
    return float(array.mean()), std


def paired_test(a: Sequence[float], b: Sequence[float], alpha: float = ALPHA) -> dict[str, Any]:
    """Paired comparison of ``a`` against ``b`` (equal length, element ``i`` = seed ``i`` of each).

    Returns ``n``, ``mean_diff`` (mean of ``a - b``), ``t``, ``p_t`` (paired t-test), ``p_perm``
    (exact sign-flip test) and ``significant`` (``p_t < alpha``). ``p_t`` is NaN with fewer than two
    pairs or when every difference is the same (zero variance: the t statistic is undefined or
    infinite, which says nothing about seed noise); ``p_perm`` is NaN with no pairs.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired_test needs two equal-length 1-D samples, got {x.shape} and {y.shape}")
    diff = x - y
    n = int(diff.size)
    result: dict[str, Any] = {
        "n": n,
        "mean_diff": float(diff.mean()) if n else math.nan,
        "t": math.nan,
        "p_t": math.nan,
        "p_perm": math.nan,
        "significant": False,
    }
    if n == 0:
        return result
    from scipy import stats

    if n >= 2 and float(diff.std(ddof=1)) > 0.0:
        test = stats.ttest_rel(x, y)
        result["t"], result["p_t"] = float(test.statistic), float(test.pvalue)
    if n == 1 or float(np.abs(diff).max()) == 0.0:  # every sign pattern is as extreme: scipy needs n >= 2
        result["p_perm"] = 1.0
    else:
        with warnings.catch_warnings():  # scipy warns that tiny n gives a coarse p: that is the point
            warnings.simplefilter("ignore")
            perm = stats.permutation_test(
                (x, y),
                lambda u, v, axis: np.mean(u - v, axis=axis),
                permutation_type="samples",
                n_resamples=np.inf,
                alternative="two-sided",
                vectorized=True,
            )
        result["p_perm"] = float(perm.pvalue)
    result["significant"] = bool(not math.isnan(result["p_t"]) and result["p_t"] < alpha)
    return result
