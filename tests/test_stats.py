import random

import numpy as np
import pytest

from emergent_alignment.stats import auroc, bootstrap_rates, hierarchical_bootstrap, percentile_ci


def test_bootstrap_rates_and_cis():
    groups = {"a": [True] * 2 + [False] * 8, "b": [False] * 10 + [None] * 5, "c": [None, None]}
    out = bootstrap_rates(groups, resamples=2000, seed=0)
    per = out["per_group"]
    assert per["a"]["rate"] == pytest.approx(0.2) and per["b"]["rate"] == 0.0 and per["c"]["rate"] is None
    assert per["a"]["eligible"] == 10 and per["b"]["eligible"] == 10 and per["c"]["n"] == 2
    assert out["rate"] == pytest.approx(0.1)  # mean of group rates; c has nothing eligible
    lo, hi = per["a"]["ci"]
    assert 0.0 <= lo < 0.2 < hi <= 0.6
    assert per["b"]["ci"] == [0.0, 0.0]
    assert per["c"]["ci"] == [None, None]
    assert out["ci"][0] < 0.1 < out["ci"][1]
    assert bootstrap_rates(groups, resamples=2000, seed=0) == out  # seeded
    assert bootstrap_rates({}, resamples=10) == {"rate": None, "ci": [None, None], "per_group": {}}


def test_percentile_ci_ignores_nan_draws():
    assert percentile_ci(np.array([np.nan, np.nan])) == [None, None]
    assert percentile_ci(np.array([0.0, 1.0, np.nan]), confidence=1.0) == [0.0, 1.0]


def test_auroc_against_pairwise_definition():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=60).astype(float)  # many ties
    labels = rng.random(60) < 0.4
    pos, neg = scores[labels], scores[~labels]
    pairwise = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert auroc(scores.tolist(), labels.tolist()) == pytest.approx(pairwise)
    assert auroc([0.1, 0.9], [False, True]) == 1.0
    assert auroc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([0.9, 0.1], [False, True]) == 0.0


def test_auroc_is_none_with_a_single_class():
    assert auroc([1, 2], [True, True]) is None
    assert auroc([1, 2], [False, False]) is None
    assert auroc([], []) is None
    with pytest.raises(ValueError, match="2 scores but 1 labels"):
        auroc([1, 2], [True])


def _reference_two_level(per_seed, n, seed):
    """A direct transcription of the definition for two levels: draw seeds, then samples in each."""
    rng = random.Random(seed)
    stats = []
    for _ in range(n):
        picked = [per_seed[rng.randrange(len(per_seed))] for _ in per_seed]
        draws = [xs[rng.randrange(len(xs))] for xs in picked for _ in xs]
        stats.append(sum(draws) / len(draws))
    return np.percentile(stats, [2.5, 97.5])


def test_hierarchical_bootstrap_matches_the_reference_two_level_resampling():
    per_seed = [[1, 0, 0, 0] * 25, [1, 1, 0, 0] * 25, [1, 0, 0, 0, 0] * 20]
    mean, lo, hi = hierarchical_bootstrap(per_seed, resamples=4000, seed=0)
    assert mean == pytest.approx(sum(map(sum, per_seed)) / 300)
    ref_lo, ref_hi = _reference_two_level(per_seed, 4000, seed=1)
    # two Monte Carlo estimates of the same percentiles: agree within a small fraction of the width
    assert lo == pytest.approx(ref_lo, abs=0.1 * (ref_hi - ref_lo))
    assert hi == pytest.approx(ref_hi, abs=0.1 * (ref_hi - ref_lo))
    assert hierarchical_bootstrap(per_seed, resamples=4000, seed=0) == (mean, lo, hi)  # seeded
    assert hierarchical_bootstrap(per_seed, resamples=4000, seed=1) != (mean, lo, hi)


def test_hierarchical_bootstrap_resamples_every_level():
    # identical clusters at the top: the CI comes only from the lower levels, and is not zero
    same = [[[1, 0]] * 3, [[1, 0]] * 3]
    _, lo, hi = hierarchical_bootstrap(same, resamples=2000, seed=0)
    assert lo < 0.5 < hi
    # constant within clusters, different between: only the top-level draw moves the mean
    between = [[[1.0] * 10] * 2, [[0.0] * 10] * 2]
    mean, lo, hi = hierarchical_bootstrap(between, resamples=2000, seed=0)
    assert mean == 0.5 and lo == 0.0 and hi == 1.0
    # four levels (organism -> seed -> question -> sample), ragged; booleans count as 0/1
    rng = np.random.default_rng(0)
    nested = [[[list(rng.random(int(rng.integers(2, 6))) < p) for _ in range(4)] for _ in range(3)] for p in (0.2, 0.6)]
    mean, lo, hi = hierarchical_bootstrap(nested, resamples=1000, seed=0)
    assert lo <= mean <= hi and 0 <= lo and hi <= 1


def test_hierarchical_bootstrap_edge_cases():
    assert all(np.isnan(x) for x in hierarchical_bootstrap([]))
    assert all(np.isnan(x) for x in hierarchical_bootstrap([[], []]))
    assert hierarchical_bootstrap([[0.7]], resamples=50) == (0.7, 0.7, 0.7)
    mean, lo, hi = hierarchical_bootstrap([[1.0], []], resamples=200, seed=0)  # some draws pick only the empty one
    assert (mean, lo, hi) == (1.0, 1.0, 1.0)
