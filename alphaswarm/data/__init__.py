"""Feeds: where bars come from.

* :class:`SyntheticFeed` -- seeded GBM bars with regimes (the default);
* :class:`ReplayFeed` -- recorded bars from CSV, Parquet or a DataFrame;
* :class:`SampleFeed` -- real daily bars of AAPL, GOOG, IBM, MSFT, 2000--2013;
* live feeds (``alpaca``, ``ccxt``, ``recording``) -- see :mod:`alphaswarm.live`, which
  registers them here (:func:`register_feed_kind`) when it is imported;
* :func:`make_feed` -- build one of them from a bot's ``data:`` block.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from alphaswarm.data.base import CALENDARS, Feed, FeedError, format_interval, parse_interval
from alphaswarm.data.replay import ReplayFeed
from alphaswarm.data.sample import SampleFeed, available_symbols
from alphaswarm.data.synthetic import SyntheticFeed

__all__ = [
    "CALENDARS",
    "FEED_KEYS",
    "Feed",
    "FeedError",
    "ReplayFeed",
    "SampleFeed",
    "SyntheticFeed",
    "available_symbols",
    "format_interval",
    "make_feed",
    "parse_interval",
    "register_feed_kind",
]

FEED_KEYS: dict[str, tuple[str, ...]] = {
    "synthetic": (
        "feed",
        "seed",
        "interval",
        "start",
        "start_price",
        "drift",
        "volatility",
        "regimes",
        "calendar",
        "bars",
    ),
    "replay": ("feed", "path", "interval", "calendar"),
    "sample": ("feed",),
}
"""Keys a ``data:`` block may hold, per feed kind (registered kinds included)."""

#: Builders of the feed kinds other layers register, by kind.
_REGISTERED: dict[str, Callable[..., Feed]] = {}


def register_feed_kind(kind: str, keys: tuple[str, ...], build: Callable[..., Feed]) -> None:
    """Let :func:`make_feed` build feeds of another kind (the live feeds register so).

    Parameters
    ----------
    kind : str
        The ``feed:`` value of a ``data:`` block.
    keys : tuple of str
        The keys such a block may hold.
    build : callable
        ``build(data, universe, *, base_dir)`` returning the :class:`Feed`.
    """
    FEED_KEYS[kind] = tuple(keys)
    _REGISTERED[kind] = build


def make_feed(
    data: Mapping[str, Any] | None,
    universe: list[str],
    *,
    base_dir: str | Path | None = None,
) -> Feed:
    """Build the feed a bot's ``data:`` block describes.

    Parameters
    ----------
    data : dict, optional
        ``{feed: synthetic, seed, interval, start, start_price, drift, volatility,
        regimes, calendar, bars}``, ``{feed: replay, path, interval, calendar}`` (path
        to a ``.csv`` or ``.parquet`` file), ``{feed: sample}`` or a live feed
        (``alpaca``, ``ccxt``, ``recording``: see
        :func:`alphaswarm.live.make_live_feed`). ``feed`` defaults to ``synthetic``;
        ``None`` means ``SyntheticFeed(universe, seed=7)``.
    universe : list of str
        Symbols the bot trades. A replay feed is restricted to them (all of the
        file's symbols when empty); a sample feed loads them (``AAPL`` when empty).
    base_dir : str or Path, optional
        Directory a relative replay ``path`` is taken from (default: the working
        directory).

    Returns
    -------
    Feed

    Raises
    ------
    FeedError
        For an unknown ``feed`` or key (the message lists the allowed ones), a bad
        value, a missing file or symbols the data do not have.
    """
    universe = list(universe)
    if data is None:
        return SyntheticFeed(universe, seed=7)
    if not isinstance(data, Mapping):
        raise FeedError(f"data: expected a mapping, got {type(data).__name__}")
    kind = data.get("feed", "synthetic")
    if kind not in FEED_KEYS:
        raise FeedError(f"data.feed: {kind!r} is not one of {', '.join(FEED_KEYS)}")
    allowed = FEED_KEYS[kind]
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise FeedError(
            f"data: unknown key(s) {', '.join(map(repr, unknown))} for feed {kind!r}; "
            f"allowed: {', '.join(allowed)}"
        )
    if kind in _REGISTERED:
        return _REGISTERED[kind](data, universe, base_dir=base_dir)
    options = {k: v for k, v in data.items() if k != "feed"}
    if kind == "synthetic":
        return SyntheticFeed(universe, **options)
    if kind == "sample":
        return SampleFeed(universe or ("AAPL",))
    if "path" not in options:
        raise FeedError("data.path: required for feed 'replay' (a .csv or .parquet file)")
    raw_path = options.pop("path")
    if not isinstance(raw_path, str | Path) or not str(raw_path).strip():
        raise FeedError(f"data.path: expected a file path, got {raw_path!r}")
    path = Path(raw_path)
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    feed = ReplayFeed.from_file(path, **options)
    return feed.select(universe) if universe else feed
