"""The JSON encoding of every JSON column value (NaN and infinities become null)."""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any

__all__ = ["json_dumps"]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, Decimal):
        return _finite(float(obj))
    if isinstance(obj, PurePath):
        return str(obj)
    tolist = getattr(obj, "tolist", None)  # numpy scalars and arrays
    if callable(tolist) and type(obj).__module__ == "numpy":
        return _sanitise(tolist())
    raise TypeError(f"values of type {type(obj).__name__} cannot be stored as JSON: {obj!r}")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _sanitise(obj: Any) -> Any:
    """Replace non-finite floats by ``None`` (JSON has no NaN) and tuples by lists."""
    if isinstance(obj, float):
        return _finite(obj)
    if isinstance(obj, dict):
        return {k: _sanitise(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_sanitise(v) for v in obj]
    return obj


#: One encoder for every JSON column value (``encode`` keeps no state between calls).
_JSON_ENCODER = json.JSONEncoder(default=_json_default, allow_nan=False)


def json_dumps(obj: Any) -> str:
    """Encode ``obj`` as JSON text for a column (non-finite floats stored as null)."""
    try:  # the usual value holds no NaN: skip the sanitising walk
        return _JSON_ENCODER.encode(obj)
    except ValueError:
        return _JSON_ENCODER.encode(_sanitise(obj))
