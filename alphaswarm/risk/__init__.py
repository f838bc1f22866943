"""Risk limits checked before every order and after every bar."""

from alphaswarm.risk.limits import AccountState, RiskDecision, RiskLimits

__all__ = ["AccountState", "RiskDecision", "RiskLimits"]
