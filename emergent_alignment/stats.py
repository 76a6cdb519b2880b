"""Statistics shared by the evaluation and the organism study: bootstrap CIs and AUROC.

- `bootstrap_rates`: per-group rates of eligible flags (None = not eligible) and the mean of the
  group rates, with percentile CIs; answers are resampled within each group.
- `hierarchical_bootstrap`: the pooled mean of nested samples (e.g. organism -> seed -> question ->
  sample) with a percentile CI, resampling clusters with replacement at every level, then the
  samples within each drawn cluster.
- `auroc`: P(score of a positive > score of a negative), ties counted half (the Mann-Whitney U
  statistic over n_pos * n_neg). With a single class the AUROC is undefined: it returns None,
  and every caller reports None as "not measured" (a dash in the reports, null in JSON).

Every bootstrap takes a seed and draws from its own `numpy.random.Generator`: the same inputs
and seed give the same figures.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95


def percentile_ci(values: np.ndarray, confidence: float = CONFIDENCE) -> list[float | None]:
    """[lo, hi] percentiles of the bootstrap draws (NaN draws left out); [None, None] without any."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if not len(values):
        return [None, None]
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return [float(lo), float(hi)]


def _ratio(m: np.ndarray, e: np.ndarray) -> np.ndarray:
    """m / e summed along the last axis; NaN where e sums to 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return m.sum(-1) / e.sum(-1)


def bootstrap_rates(groups: dict[str, list[bool | None]], resamples: int = 1000, seed: int = 0) -> dict:
    """Per-group and overall rates with percentile CIs.

    Each group's flags are True (counted), False (not counted) or None (not eligible); a group's
    rate is True / eligible (None when nothing is eligible); the overall rate is the mean of the
    group rates. Returns {"rate", "ci", "per_group": {name: {"rate", "ci", "n", "eligible",
    "misaligned"}}} ("misaligned" counts the True flags, EM's name for them).
    """
    rng = np.random.default_rng(seed)
    per, draws = {}, []
    for name, flags in groups.items():
        m = np.array([f is True for f in flags], dtype=float)
        e = np.array([f is not None for f in flags], dtype=float)
        rate = float(_ratio(m, e)) if e.sum() else None
        if len(flags):
            idx = rng.integers(0, len(flags), size=(resamples, len(flags)))
            boot = _ratio(m[idx], e[idx])
        else:
            boot = np.full(resamples, np.nan)
        draws.append(boot)
        per[name] = {
            "rate": rate,
            "ci": percentile_ci(boot),
            "n": len(flags),
            "eligible": int(e.sum()),
            "misaligned": int(m.sum()),
        }
    rates = [p["rate"] for p in per.values() if p["rate"] is not None]
    overall = float(np.mean(rates)) if rates else None
    overall_ci = [None, None]
    if draws and rates:
        with warnings.catch_warnings():  # a resample where a group has nothing eligible
            warnings.simplefilter("ignore", RuntimeWarning)
            overall_ci = percentile_ci(np.nanmean(np.stack(draws), axis=0))
    return {"rate": overall, "ci": overall_ci, "per_group": per}


def _is_leaf_level(node: Sequence) -> bool:
    return not any(isinstance(x, (list, tuple, np.ndarray)) for x in node)


def _resample(node: Sequence, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(sum, count) of the samples in `n` independent hierarchical resamples of `node`."""
    if _is_leaf_level(node):
        values = np.asarray(node, dtype=float)
        if not len(values):
            return np.zeros(n), np.zeros(n)
        idx = rng.integers(0, len(values), size=(n, len(values)))
        return values[idx].sum(1), np.full(n, float(len(values)))
    sums, counts = np.zeros(n), np.zeros(n)
    picks = rng.integers(0, len(node), size=(n, len(node)))  # clusters drawn with replacement
    for c, child in enumerate(node):
        times = (picks == c).sum(1)  # how often resample r drew cluster c
        if not times.any():
            continue
        s, k = _resample(child, int(times.sum()), rng)  # an independent inner resample per draw
        owner = np.repeat(np.arange(n), times)
        np.add.at(sums, owner, s)
        np.add.at(counts, owner, k)
    return sums, counts


def _flatten(node) -> list[float]:
    if isinstance(node, (list, tuple, np.ndarray)):
        return [x for child in node for x in _flatten(child)]
    return [float(node)]


def hierarchical_bootstrap(
    groups: Sequence, resamples: int = 2000, seed: int = 0, confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """(pooled mean, lo, hi) of nested samples, resampling clusters at every level.

    `groups` nests lists down to the samples (numbers or booleans), e.g. per_seed[seed][sample]
    or per_organism[organism][seed][question][sample]; levels may differ in size. Each resample
    draws as many clusters as there are, with replacement, at the top level, then within each
    drawn cluster as many of its sub-clusters, and so on down to the samples; its statistic is the
    pooled mean of the drawn samples. NaN for all three when there are no samples.
    """
    flat = _flatten(groups)
    if not flat:
        return float("nan"), float("nan"), float("nan")
    sums, counts = _resample(groups, resamples, np.random.default_rng(seed))
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = sums / counts  # NaN where a resample drew only empty clusters
    lo, hi = percentile_ci(draws, confidence)
    return float(np.mean(flat)), lo if lo is not None else float("nan"), hi if hi is not None else float("nan")


def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Area under the ROC curve of `scores` for the positive class; None with a single class.

    Equal to P(score of a positive > score of a negative) + 0.5 P(equal): the Mann-Whitney U of
    the positives over n_pos * n_neg (scipy.stats.mannwhitneyu).
    """
    from scipy.stats import mannwhitneyu

    s = np.asarray(scores, dtype=float)
    y = np.asarray(positives, dtype=bool)
    if len(s) != len(y):
        raise ValueError(f"auroc: {len(s)} scores but {len(y)} labels")
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return None
    u = mannwhitneyu(pos, neg, alternative="two-sided", method="asymptotic").statistic
    return float(u / (len(pos) * len(neg)))


def mean_or_none(xs) -> float | None:
    """The mean of the values that are neither None nor NaN; None when there are none."""
    xs = [x for x in xs if x is not None and x == x]
    return float(np.mean(xs)) if xs else None
