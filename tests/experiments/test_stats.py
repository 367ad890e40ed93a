"""Statistics over seeds on fixed numbers, against values worked out here with numpy and the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from attnguide.experiments.stats import (
    BETTER,
    NO_DIFFERENCE,
    TOO_FEW,
    WORSE,
    Summary,
    paired_difference,
    summarize,
)

T_975_DF2 = 4.302652729911275  # Student t quantile 0.975 with 2 degrees of freedom (tables)


def test_summary_of_three_seeds() -> None:
    summary = summarize([0.80, 0.82, 0.84])
    assert summary.n == 3
    assert summary.mean == pytest.approx(0.82)
    assert summary.std == pytest.approx(0.02)  # sample std: sqrt((0.02² + 0 + 0.02²) / 2)
    half = T_975_DF2 * 0.02 / math.sqrt(3)
    assert (summary.ci_low, summary.ci_high) == pytest.approx((0.82 - half, 0.82 + half))


def test_summary_of_one_or_no_seed_has_no_spread() -> None:
    assert summarize([0.7]) == Summary(1, 0.7, None, None, None)
    assert summarize([]) == Summary(0, None, None, None, None)


def test_paired_difference_matches_hand_computation() -> None:
    baseline = {1: 0.80, 2: 0.81, 3: 0.79, 4: 0.82, 5: 0.80, 6: 0.81}
    diffs = np.array([0.010, 0.012, 0.008, 0.011, 0.009, 0.013])
    guided = {seed: baseline[seed] + d for seed, d in zip(sorted(baseline), diffs, strict=True)}
    result = paired_difference(guided, baseline)
    assert result.n == 6 and result.mean_diff == pytest.approx(diffs.mean())
    t = diffs.mean() / (diffs.std(ddof=1) / math.sqrt(6))
    assert result.t_p == pytest.approx(2 * scipy_stats.t.sf(t, 5), rel=1e-6)
    assert result.wilcoxon_p == pytest.approx(2 / 2**6)  # all six differences positive: exact 2/2^n
    assert diffs.min() <= result.ci_low < result.mean_diff < result.ci_high <= diffs.max()
    assert result.verdict == BETTER
    assert paired_difference(guided, baseline) == result  # fixed bootstrap seed: reproducible


def test_worse_is_symmetric() -> None:
    baseline = {s: 0.8 for s in range(1, 6)}
    worse = {s: 0.8 - d for s, d in zip(range(1, 6), [0.02, 0.021, 0.019, 0.022, 0.018], strict=True)}
    result = paired_difference(worse, baseline)
    assert result.verdict == WORSE and result.ci_high < 0
    assert result.wilcoxon_p is None  # below 6 pairs Wilcoxon cannot reach p < 0.05: not reported


def test_bootstrap_alone_does_not_make_a_verdict() -> None:
    # Three positive differences: every bootstrap resample mean is positive, so the interval excludes
    # zero, but the paired t-test does not reject (p ≈ 0.37): no detectable difference.
    baseline = {1: 0.8, 2: 0.8, 3: 0.8}
    guided = {1: 0.801, 2: 0.802, 3: 0.830}
    result = paired_difference(guided, baseline)
    assert result.ci_low > 0 and result.t_p > 0.05
    assert result.verdict == NO_DIFFERENCE


def test_identical_differences_and_unpaired_seeds() -> None:
    same = paired_difference({1: 0.5, 2: 0.6}, {1: 0.5, 2: 0.6})
    assert (same.mean_diff, same.ci_low, same.ci_high) == (0.0, 0.0, 0.0)
    assert same.t_p is None and same.verdict == NO_DIFFERENCE
    only_common = paired_difference({1: 0.9, 2: 0.7, 3: 0.1}, {2: 0.6, 3: 0.2, 4: 0.5})
    assert only_common.n == 2 and only_common.mean_diff == pytest.approx(0.0)
    assert paired_difference({1: 0.9}, {1: 0.8}).verdict == TOO_FEW
