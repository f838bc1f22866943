"""Strategies with known behaviour for the reconciliation and explanation tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from alphaswarm.strategies import Strategy

if TYPE_CHECKING:
    from alphaswarm.model import Bar
    from alphaswarm.strategies.base import StrategyContext


class Scripted(Strategy):
    """Follows ``plan``: ``[minute, target]`` holds ``target`` units from that minute on.

    ``[minute, "limit", qty, price]`` places a GTC buy limit order instead (no signal).
    Minutes count from the first bar, so a missing bar does not shift the plan.
    """

    name: ClassVar[str] = "scripted"
    uses_history: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {"plan": []}

    def validate(self) -> None:
        """Index the plan by minute."""
        self._plan = {int(step[0]): list(step[1:]) for step in self.params["plan"]}
        self._first = None
        self._target = 0.0

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> str | None:
        """Act on the plan's step for this minute, if any."""
        if self._first is None:
            self._first = bar.ts
        step = self._plan.get(int((bar.ts - self._first).total_seconds() // 60))
        if step is None:
            return None
        if step[0] == "limit":
            ctx.buy(step[1], type="limit", limit_price=step[2], time_in_force="gtc")
            return None
        self._target = float(step[0])
        return "buy" if self._target > 0 else "flat"

    def size(self, bar: Bar, ctx: StrategyContext) -> float:
        """The planned holding."""
        return abs(self._target)


class TakesTurns(Strategy):
    """Buys at minute 10 on odd runs and at minute 20 on even ones: not deterministic."""

    name: ClassVar[str] = "takes_turns"
    uses_history: ClassVar[bool] = False
    runs: ClassVar[int] = 0

    def on_start(self, ctx: StrategyContext) -> None:
        """Count the runs of every instance (shared state: the bug under test)."""
        type(self).runs += 1
        self._entry = 10 if type(self).runs % 2 else 20
        self._first = None

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> str | None:
        """Buy at the entry minute, exit at minute 50."""
        if self._first is None:
            self._first = bar.ts
        minute = int((bar.ts - self._first).total_seconds() // 60)
        if minute == self._entry:
            return "buy"
        if minute == 50:
            return "flat"
        return None
