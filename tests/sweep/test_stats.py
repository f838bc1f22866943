"""PSR, DSR and PBO against the hand-computed values of the research note."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alphaswarm.sweep import stats

SR = 2.5 / math.sqrt(250)  # 0.158114 per day


def test_expected_max_sharpe_matches_the_paper():
    sr0 = stats.expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.113172, abs=1e-6)
    assert sr0 * math.sqrt(250) == pytest.approx(1.789, abs=1e-3)


def test_dsr_of_the_papers_example_is_0_9004():
    value = stats.dsr(SR, 1250, 100, 0.5 / 250, skew=-3, kurt=10)
    assert round(value, 4) == 0.9004
    z = stats.norm_ppf(value)
    assert z == pytest.approx(1.283816, abs=1e-5)


def test_psr_against_zero_of_the_same_inputs():
    assert round(stats.psr(SR, 1250, skew=-3, kurt=10), 6) == 0.999997


def test_psr_simple_case():
    assert round(stats.psr(0.1, 253), 5) == 0.94335
    z = stats.norm_ppf(stats.psr(0.1, 253))
    assert z == pytest.approx(1.583497, abs=1e-5)


def test_psr_degenerate_inputs_are_nan():
    assert math.isnan(stats.psr(0.1, 1))
    assert stats.expected_max_sharpe(1, 0.1) == 0.0


HAND = [[3, 5, 7, 8], [6, 8, 8, 6], [6, 5, 1, 5], [2, 1, 2, 7]]


def test_pbo_of_the_4x4_matrix_is_one_half():
    result = stats.pbo(HAND, metric="sum")
    assert result.pbo == 0.5
    assert result.combinations == 6
    expected = [
        math.log(1 / 4),
        math.log(4),
        math.log(2 / 3),
        math.log(2 / 3),
        math.log(4),
        math.log(3 / 2),
    ]
    np.testing.assert_allclose(result.logits, expected)
    np.testing.assert_allclose(
        np.round(result.logits, 3), [-1.386, 1.386, -0.405, -0.405, 1.386, 0.405]
    )


def test_pbo_is_zero_when_one_trial_wins_every_block():
    rng = np.random.default_rng(1)
    m = rng.normal(size=(8, 6))
    m[:, 4] += 10
    result = stats.pbo(m, metric="sum")
    assert result.pbo == 0.0
    assert np.all(result.logits > 0)


def test_pbo_from_moments_equals_pbo_from_the_return_matrix():
    rng = np.random.default_rng(7)
    returns = rng.normal(0.0005, 0.01, size=(160, 12))
    returns[:, 3] += 0.002
    moments = np.stack(
        [np.array(stats.block_moments(returns[:, j], 16)) for j in range(12)], axis=1
    )
    fast = stats.pbo(moments, blocks=8)
    # brute force: Sharpe of each trial over the concatenated rows of each split
    blocks = np.array_split(np.arange(160), 8)
    below = 0
    for split in fast.splits:
        rows = np.concatenate([blocks[b] for b in split])
        rest = np.setdiff1d(np.arange(160), rows)
        r_is = returns[rows].mean(0) / returns[rows].std(0, ddof=1)
        r_oos = returns[rest].mean(0) / returns[rest].std(0, ddof=1)
        best = int(np.argmax(r_is))
        rank = (r_oos < r_oos[best]).sum() + 1
        below += math.log(rank / (13 - rank)) <= 0
    assert fast.pbo == below / len(fast.splits)


def test_sharpe_from_moments_matches_numpy():
    r = np.random.default_rng(3).normal(size=50)
    sr = stats.sharpe_from_moments(50, r.sum(), (r * r).sum())
    assert sr == pytest.approx(r.mean() / r.std(ddof=1), rel=1e-12)
    assert stats.moments_of(r)["sr"] == pytest.approx(r.mean() / r.std(ddof=1), rel=1e-12)


def test_pbo_rejects_bad_block_counts():
    with pytest.raises(ValueError, match="blocks"):
        stats.pbo(HAND, blocks=3, metric="sum")
