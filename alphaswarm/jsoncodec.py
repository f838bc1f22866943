"""One JSON encoder for HTTP responses, WebSocket frames and the ledger's JSON columns.

Non-finite floats become ``null`` (JSON has no NaN); datetimes, dates and timestamps
become ISO text; enums their value; numpy scalars and arrays, Decimals, paths and
DataFrames (a list of records) plain JSON values. :func:`dumps` refuses any other
type (a ledger column must hold JSON); :func:`dumps_lenient` writes it as ``str()``
(a response or a frame never fails on an odd value).

orjson does the encoding when it is installed (``bench/json_encoding.py`` prints the
figures beside the standard library's); the output is the same JSON either way.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

try:  # optional: faster, same output
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson is absent
    orjson = None

__all__ = ["BACKEND", "dumps", "dumps_bytes", "dumps_lenient", "jsonable"]

#: The library encoding: ``"orjson"`` or ``"json"``.
BACKEND = "orjson" if orjson is not None else "json"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _special(obj: Any) -> tuple[bool, Any]:
    """``(True, plain value)`` for the types both encoders convert, else ``(False, None)``."""
    if isinstance(obj, Enum):
        return True, obj.value
    name = type(obj).__name__
    if name in ("NaTType", "NAType"):  # pandas' missing values
        return True, None
    if isinstance(obj, datetime | date):
        return True, obj.isoformat()
    if isinstance(obj, Decimal):
        return True, _finite(float(obj))
    if isinstance(obj, PurePath):
        return True, str(obj)
    module = type(obj).__module__
    if module == "numpy" or module.startswith("numpy."):
        tolist = getattr(obj, "tolist", None)
        if callable(tolist):
            return True, sanitise(tolist())
    if name == "DataFrame" and module.startswith("pandas"):
        return True, sanitise(obj.to_dict("records"))
    if name == "Series" and module.startswith("pandas"):
        return True, sanitise(obj.tolist())
    if isinstance(obj, set | frozenset):
        return True, sorted(obj, key=repr)
    return False, None


def _strict_default(obj: Any) -> Any:
    known, value = _special(obj)
    if known:
        return value
    raise TypeError(f"values of type {type(obj).__name__} cannot be stored as JSON: {obj!r}")


def _lenient_default(obj: Any) -> Any:
    known, value = _special(obj)
    return value if known else str(obj)


def sanitise(obj: Any) -> Any:
    """Replace non-finite floats by ``None``, tuples by lists and keys by text, recursively."""
    if isinstance(obj, float):
        return _finite(obj)
    if isinstance(obj, dict):
        return {k if isinstance(k, str) else str(k): sanitise(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [sanitise(v) for v in obj]
    return obj


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON values (dicts, lists, text, numbers, booleans, ``None``)."""
    known, plain = _special(value)
    if known:
        return jsonable(plain)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return _finite(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


_STRICT = json.JSONEncoder(default=_strict_default, allow_nan=False, separators=(",", ":"))
_LENIENT = json.JSONEncoder(default=_lenient_default, allow_nan=False, separators=(",", ":"))


def _stdlib(encoder: json.JSONEncoder, obj: Any) -> str:
    try:  # the usual value holds no NaN: skip the sanitising walk
        return encoder.encode(obj)
    except ValueError:
        return encoder.encode(sanitise(obj))


if orjson is not None:
    _OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

    def _fast(default: Callable[[Any], Any], encoder: json.JSONEncoder, obj: Any) -> bytes:
        try:
            return orjson.dumps(obj, default=default, option=_OPTIONS)
        except orjson.JSONEncodeError as exc:
            if isinstance(exc.__cause__, TypeError) and default is _strict_default:
                raise exc.__cause__ from None
            # integers over 64 bits, and the like: the standard library writes them
            return _stdlib(encoder, obj).encode()


def dumps_bytes(obj: Any, *, lenient: bool = False) -> bytes:
    """Encode ``obj`` as UTF-8 JSON bytes (see :func:`dumps`)."""
    default, encoder = (_lenient_default, _LENIENT) if lenient else (_strict_default, _STRICT)
    if orjson is not None:
        return _fast(default, encoder, obj)
    return _stdlib(encoder, obj).encode()


def dumps(obj: Any) -> str:
    """Encode ``obj`` as JSON text; non-finite floats as ``null``.

    Parameters
    ----------
    obj : object
        Plain values, or the types listed in the module docstring.

    Returns
    -------
    str
        Compact JSON.

    Raises
    ------
    TypeError
        For a value of another type.
    """
    if orjson is not None:
        return _fast(_strict_default, _STRICT, obj).decode()
    return _stdlib(_STRICT, obj)


def dumps_lenient(obj: Any) -> str:
    """Like :func:`dumps`, but a value of an unknown type is written as its ``str()``."""
    if orjson is not None:
        return _fast(_lenient_default, _LENIENT, obj).decode()
    return _stdlib(_LENIENT, obj)
