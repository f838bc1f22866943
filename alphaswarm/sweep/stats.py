"""Overfitting statistics: PSR, DSR and PBO by CSCV.

* :func:`psr` -- Probabilistic Sharpe Ratio (Bailey & Lopez de Prado 2012);
* :func:`expected_max_sharpe` and :func:`dsr` -- the Deflated Sharpe Ratio (Bailey &
  Lopez de Prado 2014): the PSR against the Sharpe ratio the best of ``N``
  unskilled trials would reach by luck;
* :func:`pbo` -- Probability of Backtest Overfitting by combinatorially symmetric
  cross-validation (Bailey, Borwein, Lopez de Prado & Zhu 2017), computed from
  per-block return moments ``(n, sum r, sum r^2)`` so that no trial ever ships its
  return series.

Sharpe ratios here are per period (not annualised): mean / standard deviation of
the same returns the test counts (``T``). Kurtosis is Pearson's (3 for a normal).
Only the standard library and numpy are used.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = [
    "EULER_GAMMA",
    "PBOResult",
    "block_moments",
    "block_sharpe",
    "dsr",
    "expected_max_sharpe",
    "moments_of",
    "norm_cdf",
    "norm_ppf",
    "pbo",
    "psr",
    "sharpe_from_moments",
]

#: The Euler-Mascheroni constant.
EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()


def norm_cdf(x: float) -> float:
    """Standard normal cumulative distribution function."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def norm_ppf(p: float) -> float:
    """Inverse of :func:`norm_cdf` for ``0 < p < 1``."""
    return _NORMAL.inv_cdf(p)


def psr(sr: float, t: int, skew: float = 0.0, kurt: float = 3.0, sr_star: float = 0.0) -> float:
    """Probabilistic Sharpe Ratio: the probability that the true Sharpe exceeds ``sr_star``.

    ``PSR = Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2))``.

    Parameters
    ----------
    sr : float
        Observed per-period Sharpe ratio.
    t : int
        Number of returns it was measured on (>= 2).
    skew : float
        Skewness of the returns (``g3``).
    kurt : float
        Pearson kurtosis of the returns (``g4``; 3 for a normal distribution).
    sr_star : float
        Benchmark Sharpe ratio, same period.

    Returns
    -------
    float
        A probability in [0, 1]; NaN when ``t < 2`` or the variance term is not positive.

    Examples
    --------
    >>> round(psr(0.1, 253), 5)
    0.94335
    """
    if t < 2 or not all(map(math.isfinite, (sr, skew, kurt, sr_star))):
        return float("nan")
    var = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    if not var > 0:
        return float("nan")
    return norm_cdf((sr - sr_star) * math.sqrt(t - 1) / math.sqrt(var))


def expected_max_sharpe(n_trials: float, variance: float) -> float:
    """Sharpe ratio the best of ``n_trials`` skill-less trials reaches by luck (``SR0``).

    ``SR0 = sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e)))``.

    Parameters
    ----------
    n_trials : float
        Number of independent trials ``N`` (> 1; 1 or fewer gives 0).
    variance : float
        Variance ``V`` of the trials' Sharpe estimates (per period).

    Returns
    -------
    float
        ``SR0``, per period.
    """
    if n_trials <= 1 or not variance > 0:
        return 0.0
    bracket = (1.0 - EULER_GAMMA) * norm_ppf(1.0 - 1.0 / n_trials) + EULER_GAMMA * norm_ppf(
        1.0 - 1.0 / (n_trials * math.e)
    )
    return math.sqrt(variance) * bracket


def dsr(
    sr: float, t: int, n_trials: float, variance: float, skew: float = 0.0, kurt: float = 3.0
) -> float:
    """Deflated Sharpe Ratio: :func:`psr` against :func:`expected_max_sharpe`.

    Parameters
    ----------
    sr : float
        Per-period Sharpe ratio of the selected trial.
    t : int
        Number of returns behind ``sr``.
    n_trials : float
        Number of (independent) trials tried, all sweeps of the family included.
    variance : float
        Variance of the trials' per-period Sharpe ratios.
    skew, kurt : float
        Skewness and Pearson kurtosis of the selected trial's returns.

    Returns
    -------
    float
        The probability that the selected trial's true Sharpe is above zero after
        correcting for the number of trials (0.95 is the customary bar).

    Examples
    --------
    The paper's example (annual SR 2.5 over five years of days, 100 trials):

    >>> round(dsr(2.5 / 250**0.5, 1250, 100, 0.5 / 250, skew=-3, kurt=10), 4)
    0.9004
    """
    return psr(sr, t, skew, kurt, sr_star=expected_max_sharpe(n_trials, variance))


def moments_of(returns: Any) -> dict[str, float]:
    """Count, per-period Sharpe, skewness and Pearson kurtosis of a return series.

    Parameters
    ----------
    returns : array-like
        Per-period returns.

    Returns
    -------
    dict
        ``n``, ``mean``, ``std`` (ddof=1), ``sr`` (mean/std), ``skew`` and ``kurt``
        (population moments; 0 and 3 when the series is constant or too short).
    """
    r = np.asarray(returns, dtype=float)
    n = len(r)
    if n < 2:
        return {
            "n": n,
            "mean": float(r.mean()) if n else 0.0,
            "std": 0.0,
            "sr": 0.0,
            "skew": 0.0,
            "kurt": 3.0,
        }
    mean = float(r.mean())
    std = float(r.std(ddof=1))
    dev = r - mean
    m2 = float(np.mean(dev**2))
    if not m2 > 0:
        return {"n": n, "mean": mean, "std": 0.0, "sr": 0.0, "skew": 0.0, "kurt": 3.0}
    skew = float(np.mean(dev**3)) / m2**1.5
    kurt = float(np.mean(dev**4)) / m2**2
    return {
        "n": n,
        "mean": mean,
        "std": std,
        "sr": mean / std if std > 0 else 0.0,
        "skew": skew,
        "kurt": kurt,
    }


def block_moments(returns: Any, blocks: int) -> list[list[float]]:
    """Split ``returns`` into ``blocks`` contiguous, near-equal blocks; ``(n, sum, sum sq)`` each.

    Parameters
    ----------
    returns : array-like
        Per-period returns (the same length for every trial of a sweep).
    blocks : int
        Number of blocks ``S``.

    Returns
    -------
    list of [n, sum r, sum r^2]
        One triple per block, in time order.
    """
    r = np.asarray(returns, dtype=float)
    return [[float(len(b)), float(b.sum()), float(np.dot(b, b))] for b in np.array_split(r, blocks)]


def sharpe_from_moments(n: Any, s1: Any, s2: Any) -> np.ndarray:
    """Per-period Sharpe ratio (ddof=1) from count, sum and sum of squares (element-wise).

    Returns 0 where the count is below 2 or the variance is not positive.
    """
    n, s1, s2 = (np.asarray(a, dtype=float) for a in (n, s1, s2))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s1 / n
        var = (s2 - n * mean * mean) / (n - 1)
        sr = mean / np.sqrt(var)
    ok = (n >= 2) & (var > 1e-300)
    return np.where(ok, sr, 0.0)


def block_sharpe(moments: Any, first: int, last: int) -> np.ndarray:
    """Sharpe ratio of every trial over blocks ``first .. last - 1``.

    Parameters
    ----------
    moments : array of shape (S, N, 3)
        Per-block ``(n, sum, sum sq)`` of ``N`` trials.
    first, last : int
        Block range.
    """
    m = np.asarray(moments, dtype=float)[first:last].sum(axis=0)
    return sharpe_from_moments(m[:, 0], m[:, 1], m[:, 2])


@dataclass
class PBOResult:
    """What :func:`pbo` returns.

    Attributes
    ----------
    pbo : float
        Share of the splits whose in-sample winner ranks at or below the
        out-of-sample median (logit <= 0).
    logits : ndarray
        ``lambda`` of every split.
    is_best, oos_of_best : ndarray
        In-sample metric of each split's winner and its out-of-sample metric.
    degradation : float
        Slope of ``oos_of_best`` on ``is_best`` (negative: in-sample gains do not carry).
    prob_loss : float
        Share of splits whose winner has an out-of-sample metric below zero.
    blocks, combinations, n_trials : int
        ``S``, ``C(S, S/2)`` and ``N``.
    """

    pbo: float
    logits: np.ndarray
    is_best: np.ndarray
    oos_of_best: np.ndarray
    degradation: float
    prob_loss: float
    blocks: int
    combinations: int
    n_trials: int
    splits: list[tuple[int, ...]] = field(default_factory=list, repr=False)


def _metric(sums: np.ndarray, metric: str) -> np.ndarray:
    n, s1, s2 = sums[..., 0], sums[..., 1], sums[..., 2]
    if metric == "sharpe":
        return sharpe_from_moments(n, s1, s2)
    if metric == "sum":
        return s1
    if metric == "mean":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(n > 0, s1 / n, 0.0)
    raise ValueError(f"metric: {metric!r} is not one of sharpe, sum, mean")


def _rank_of(values: np.ndarray, pick: np.ndarray) -> np.ndarray:
    """Rank of ``values[i, pick[i]]`` within row ``i`` (1 = lowest, ties averaged)."""
    chosen = values[np.arange(len(pick)), pick][:, None]
    less = (values < chosen).sum(axis=1)
    equal = (values == chosen).sum(axis=1)
    return less + (equal + 1) / 2.0


def pbo(moments: Any, blocks: int | None = None, metric: str = "sharpe") -> PBOResult:
    """Probability of Backtest Overfitting by CSCV, from per-block return moments.

    Parameters
    ----------
    moments : array-like of shape (S, N, 3) or (S, N)
        Per-block ``(n, sum r, sum r^2)`` of each of ``N`` trials, blocks in time
        order; a 2-D array is a performance matrix with one row per block (each
        value taken as a single return).
    blocks : int, optional
        Merge adjacent blocks into this many (it must divide ``S`` and be even);
        default ``S``.
    metric : str
        ``"sharpe"`` (the default), ``"sum"`` or ``"mean"`` of the returns in a set
        of blocks.

    Returns
    -------
    PBOResult

    Examples
    --------
    >>> m = [[3, 5, 7, 8], [6, 8, 8, 6], [6, 5, 1, 5], [2, 1, 2, 7]]
    >>> pbo(m, metric="sum").pbo
    0.5
    """
    m = np.asarray(moments, dtype=float)
    if m.ndim == 2:
        m = np.stack([np.ones_like(m), m, m * m], axis=-1)
    if m.ndim != 3 or m.shape[-1] != 3:
        raise ValueError(f"moments: expected shape (S, N, 3) or (S, N), got {m.shape}")
    s_in, n_trials = m.shape[0], m.shape[1]
    blocks = s_in if blocks is None else int(blocks)
    if blocks < 2 or blocks % 2 or s_in % blocks:
        raise ValueError(
            f"blocks: must be even, >= 2 and divide the {s_in} blocks the trials returned, "
            f"got {blocks}"
        )
    if blocks != s_in:
        m = m.reshape(blocks, s_in // blocks, n_trials, 3).sum(axis=1)
    splits = list(itertools.combinations(range(blocks), blocks // 2))
    if n_trials < 2:
        nan = float("nan")
        return PBOResult(
            nan,
            np.empty(0),
            np.empty(0),
            np.empty(0),
            nan,
            nan,
            blocks,
            len(splits),
            n_trials,
            splits,
        )
    chooser = np.zeros((len(splits), blocks))
    for i, split in enumerate(splits):
        chooser[i, list(split)] = 1.0
    total = m.sum(axis=0)  # (N, 3)
    flat = m.reshape(blocks, n_trials * 3)
    logits = np.empty(len(splits))
    is_best, oos_best = np.empty(len(splits)), np.empty(len(splits))
    step = max(1, 4_000_000 // max(n_trials * 3, 1))  # bound memory: ~32 MB per chunk
    for a in range(0, len(splits), step):
        train = (chooser[a : a + step] @ flat).reshape(-1, n_trials, 3)
        test = total[None, :, :] - train
        r_is, r_oos = _metric(train, metric), _metric(test, metric)
        best = np.argmax(r_is, axis=1)
        rows = np.arange(len(best))
        omega = _rank_of(r_oos, best) / (n_trials + 1.0)
        logits[a : a + step] = np.log(omega / (1.0 - omega))
        is_best[a : a + step], oos_best[a : a + step] = r_is[rows, best], r_oos[rows, best]
    if len(splits) > 1 and np.ptp(is_best) > 0:
        degradation = float(np.polyfit(is_best, oos_best, 1)[0])
    else:
        degradation = float("nan")
    return PBOResult(
        pbo=float(np.mean(logits <= 0)),
        logits=logits,
        is_best=is_best,
        oos_of_best=oos_best,
        degradation=degradation,
        prob_loss=float(np.mean(oos_best < 0)),
        blocks=blocks,
        combinations=len(splits),
        n_trials=n_trials,
        splits=splits,
    )
