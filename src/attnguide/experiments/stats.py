"""Statistics over seeds: the spread of one setting, and its paired difference from the baseline.

Why a verdict needs two tests. The bootstrap interval of a mean over a few seeds is far too narrow:
with 3 seeds, whenever all three differences share a sign every resampled mean does too, so the
interval excludes zero in about 1 grid of 4 where guiding changes nothing. Simulated with normal
differences and no effect (2,000 grids per row), the interval excluded zero in 50% of grids with
2 seeds, 25% with 3, 16% with 5, 11% with 8 and 9% with 10. A setting is therefore called better
(worse) only where the bootstrap interval excludes zero, the mean difference is positive
(negative), and the paired t-test, which holds its 5% level at any number of seeds, also rejects:
4-5% false calls in the same simulation. The Wilcoxon signed-rank test is reported from 6 pairs
on: with 5 pairs or fewer its smallest two-sided p-value is 2/2^n >= 0.0625, so it cannot reject.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
WILCOXON_MIN_PAIRS = 6

BETTER = "better"
WORSE = "worse"
NO_DIFFERENCE = "no detectable difference"
TOO_FEW = "too few paired seeds"

METHODS = (
    f"mean ± sample standard deviation over seeds; {CONFIDENCE:.0%} CI: Student-t interval of the mean. "
    "Δ: per-seed paired difference from the unguided baseline (same data, model, training settings "
    f"and seed); its {CONFIDENCE:.0%} CI is a percentile bootstrap of the mean difference "
    f"({BOOTSTRAP_RESAMPLES} resamples of the per-seed differences, seed {BOOTSTRAP_SEED}, "
    "scipy.stats.bootstrap). p: two-sided paired t-test (scipy.stats.ttest_rel); Wilcoxon signed-rank "
    f"(scipy.stats.wilcoxon) from {WILCOXON_MIN_PAIRS} pairs on, since with fewer it cannot reach "
    f"p < {ALPHA:.2f}. Verdict: better/worse only where the bootstrap CI excludes 0 and the paired "
    f"t-test gives p < {ALPHA:.2f} (the bootstrap alone over-calls with few seeds); p-values are not "
    "corrected for the number of settings compared: the test-set table checks the setting chosen on dev."
)


@dataclass(frozen=True)
class Summary:
    """One setting over seeds: count, mean, sample std and t-interval (``None`` below 2 values)."""

    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class Paired:
    """A setting against its baseline over the seeds both have: Δ = setting − baseline."""

    n: int
    mean_diff: float | None
    ci_low: float | None
    ci_high: float | None
    t_p: float | None
    wilcoxon_p: float | None
    verdict: str


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def summarize(values: Sequence[float]) -> Summary:
    """Mean, sample standard deviation (ddof 1) and Student-t confidence interval of the mean."""
    data = np.asarray(values, dtype=float)
    n = len(data)
    if n == 0:
        return Summary(0, None, None, None, None)
    mean = float(data.mean())
    if n < 2:
        return Summary(n, mean, None, None, None)
    std = float(data.std(ddof=1))
    half = float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


def paired_difference(values: Mapping[int, float], baseline: Mapping[int, float]) -> Paired:
    """Compare a setting with its baseline seed by seed (seeds missing from either are left out)."""
    seeds = sorted(set(values) & set(baseline))
    diffs = np.array([values[s] - baseline[s] for s in seeds], dtype=float)
    n = len(diffs)
    if n < 2:
        return Paired(n, float(diffs.mean()) if n else None, None, None, None, None, TOO_FEW)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        interval = stats.bootstrap(
            (diffs,),
            np.mean,
            n_resamples=BOOTSTRAP_RESAMPLES,
            confidence_level=CONFIDENCE,
            method="percentile",
            rng=np.random.default_rng(BOOTSTRAP_SEED),
        ).confidence_interval
        t_p = _finite(stats.ttest_rel([values[s] for s in seeds], [baseline[s] for s in seeds]).pvalue)
        wilcoxon_p = _finite(stats.wilcoxon(diffs).pvalue) if n >= WILCOXON_MIN_PAIRS else None
    low, high, mean = float(interval.low), float(interval.high), float(diffs.mean())
    significant = t_p is not None and t_p < ALPHA
    if significant and low > 0 and mean > 0:
        verdict = BETTER
    elif significant and high < 0 and mean < 0:
        verdict = WORSE
    else:
        verdict = NO_DIFFERENCE
    return Paired(n, mean, low, high, t_p, wilcoxon_p, verdict)
