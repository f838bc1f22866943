"""Schemas declared once: Param classes that both validate a mapping and describe it.

A request body or a block of a bot spec is a :class:`param.Parameterized` subclass
whose parameters carry the type, bounds, choices and ``doc`` of each key.
:func:`validate` reads a plain mapping against it (every problem at once, unknown
keys with did-you-mean suggestions) and :func:`json_schema` writes the OpenAPI 3.0
schema from the same declaration, so the numbers a handler enforces and the numbers
``/openapi.json`` states cannot drift apart.

Examples
--------
>>> import param
>>> class Body(param.Parameterized):
...     cash = param.Number(None, allow_None=True, bounds=(0, 10), doc="Cash.")
>>> validate(Body, {"cash": 11})[1][0].message
'cash: must be <= 10, got 11'
>>> json_schema(Body)["properties"]["cash"]["maximum"]
10
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import param
from param.parameterized import Undefined

if TYPE_CHECKING:
    from collections.abc import Callable

#: ``Problem.kind`` of a value of the wrong type (HTTP 400).
TYPE = "type"
#: ``Problem.kind`` of a well-typed value that is not allowed (HTTP 422).
VALUE = "value"
#: ``Problem.kind`` of a key the schema does not declare (HTTP 422).
UNKNOWN = "unknown"


class Text(param.String):
    """A string parameter with a length range; NUL and lone surrogates are refused.

    Parameters
    ----------
    default : str or None
        The default value.
    min_length : int, optional
        Fewest characters accepted.
    max_length : int, optional
        Most characters accepted.
    choices : sequence of str, optional
        The only values accepted (a string ``name`` parameter cannot be a Selector).
    **params
        Passed to :class:`param.String`.
    """

    __slots__ = ["choices", "max_length", "min_length"]
    _slot_defaults = dict(
        param.String._slot_defaults, choices=None, max_length=None, min_length=None
    )

    def __init__(
        self,
        default: Any = Undefined,
        *,
        min_length: Any = Undefined,
        max_length: Any = Undefined,
        choices: Any = Undefined,
        **params: Any,
    ) -> None:
        super().__init__(default=default, **params)
        self.choices = choices
        self.min_length = min_length
        self.max_length = max_length


class DateText(Text):
    """A date as text (``2024-01-01``); a YAML date value is accepted too."""

    __slots__: list[str] = []


class Mapping(param.Dict):
    """A free-form mapping (string keys)."""

    __slots__: list[str] = []


class Shaped(param.Parameter):
    """A value whose shape its owner checks; ``json`` is its schema in ``/openapi.json``.

    Parameters
    ----------
    default : object
        The default value.
    json : dict, optional
        The OpenAPI schema of the accepted values.
    **params
        Passed to :class:`param.Parameter`.
    """

    __slots__ = ["json"]
    _slot_defaults = dict(param.Parameter._slot_defaults, json=None)

    def __init__(self, default: Any = Undefined, *, json: Any = Undefined, **params: Any) -> None:
        super().__init__(default=default, **params)
        self.json = json


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a mapping.

    Parameters
    ----------
    field : str
        The key (dotted for nested blocks).
    message : str
        A sentence naming the key, starting with it.
    kind : str
        :data:`TYPE`, :data:`VALUE` or :data:`UNKNOWN`.
    """

    field: str
    message: str
    kind: str
    related: tuple[str, ...] = ()

    @property
    def fields(self) -> tuple[str, ...]:
        """Every key the problem is about (``field`` first, then ``related``)."""
        return tuple(f for f in (self.field, *self.related) if f)


@dataclass(frozen=True)
class Rule:
    """A rule across keys of a declared model, checked after each key on its own.

    A model lists its rules in the class attribute ``RULES``; :func:`validate` checks
    a rule when none of its keys has a problem of its own, and :func:`json_schema`
    states it (``x-rules``).

    Parameters
    ----------
    fields : tuple of str
        The keys the rule relates (the first is the one the message starts with).
    doc : str
        The rule in words, as ``/openapi.json`` states it.
    broken : callable
        ``broken(values)``: a message (starting with the first key) when the values
        break the rule, else ``None``.

    Examples
    --------
    >>> import param
    >>> class Span(param.Parameterized):
    ...     low = param.Number(0, doc="Low.")
    ...     high = param.Number(1, doc="High.")
    ...     RULES = (Rule(("low", "high"), "low <= high",
    ...                   lambda v: "low: above high" if v["low"] > v["high"] else None),)
    >>> validate(Span, {"low": 2})[1][0].fields
    ('low', 'high')
    """

    fields: tuple[str, ...]
    doc: str
    broken: Callable[[dict[str, Any]], str | None]


def rules(model: type[param.Parameterized]) -> tuple[Rule, ...]:
    """The cross-key rules ``model`` declares (its ``RULES``; none by default)."""
    return tuple(getattr(model, "RULES", ()))


def _broken_rules(
    model: type[param.Parameterized], values: dict[str, Any], problems: list[Problem], where: str
) -> list[Problem]:
    """A problem for each rule of ``model`` the values break (keys already wrong skipped)."""
    wrong = {p.field for p in problems}
    out = []
    for rule in rules(model):
        names = tuple(f"{where}.{f}" if where else f for f in rule.fields)
        if wrong.intersection(names):
            continue
        message = rule.broken(values)
        if message is not None:
            out.append(Problem(names[0], message, VALUE, names[1:]))
    return out


def result_field(kind: type[param.Parameter], doc: str, **params: Any) -> param.Parameter:
    """A field of a result object: read-only (``constant``) and ``None`` until it is set.

    Parameters
    ----------
    kind : type of param.Parameter
        ``param.DataFrame``, ``param.String`` ...
    doc : str
        What the field holds.
    **params
        Further keywords of ``kind`` (``class_=`` of a ``ClassSelector``).

    Examples
    --------
    >>> import param
    >>> result_field(param.Number, "Return.").constant
    True
    """
    return kind(default=None, allow_None=True, constant=True, doc=doc, **params)


def fields(model: type[param.Parameterized]) -> dict[str, param.Parameter]:
    """The declared parameters of ``model`` by key, in declaration order.

    Param's own ``name`` is left out; a parameter whose name ends in ``_`` declares
    the key without it (``name_`` declares ``name``, which Param reserves).
    """
    params = model.param.objects("existing").items()
    return {k.removesuffix("_"): p for k, p in params if k != "name"}


def keys(model: type[param.Parameterized]) -> tuple[str, ...]:
    """The keys ``model`` declares, in declaration order."""
    return tuple(fields(model))


def suggest(key: Any, allowed: tuple[str, ...] | list[str]) -> str | None:
    """The allowed key closest to ``key`` (difflib), or ``None`` when none is close."""
    if not isinstance(key, str):
        return None
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_keys(
    block: dict[Any, Any], allowed: tuple[str, ...] | list[str], where: str = ""
) -> Problem | None:
    """One :class:`Problem` naming every key of ``block`` not in ``allowed``.

    Parameters
    ----------
    block : dict
        The mapping read.
    allowed : sequence of str
        The declared keys.
    where : str
        The block's name, the message's prefix (``"gate"`` gives ``"gate: ..."``).

    Returns
    -------
    Problem or None
        ``None`` when every key is declared; else the message lists each unknown key,
        with ``(did you mean 'x'?)`` where one is close, then the allowed keys.
    """
    unknown = sorted((k for k in block if k not in allowed), key=repr)
    if not unknown:
        return None
    named = []
    for key in unknown:
        close = suggest(key, allowed)
        named.append(f"{key!r} (did you mean {close!r}?)" if close else repr(key))
    prefix = f"{where}: " if where else ""
    message = f"{prefix}unknown key(s) {', '.join(named)}; allowed: {', '.join(allowed)}"
    return Problem(where or "", message, UNKNOWN)


def did_you_mean(block: dict[Any, Any], allowed: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``{unknown key: closest allowed key or None}`` for the keys of ``block`` not allowed."""
    return {str(k): suggest(k, allowed) for k in block if k not in allowed}


def _fmt(bound: float) -> str:
    return f"{bound:g}"


def _check_number(key: str, p: param.Number, value: Any) -> tuple[Any, Problem | None]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        got = f"{type(value).__name__} {value!r}"
        return None, Problem(key, f"{key}: expected a number, got {got}", TYPE)
    if not math.isfinite(value):
        return None, Problem(key, f"{key}: must be a finite number, got {value}", VALUE)
    integer = isinstance(p, param.Integer)
    if integer and float(value) != int(value):
        return None, Problem(key, f"{key}: expected a whole number, got {value}", VALUE)
    low, high = p.bounds or (None, None)
    low_in, high_in = p.inclusive_bounds
    if low is not None and (value < low if low_in else value <= low):
        op = ">=" if low_in else ">"
        return None, Problem(key, f"{key}: must be {op} {_fmt(low)}, got {value}", VALUE)
    if high is not None and (value > high if high_in else value >= high):
        op = "<=" if high_in else "<"
        return None, Problem(key, f"{key}: must be {op} {_fmt(high)}, got {value}", VALUE)
    return (int(value) if integer else float(value)), None


def _check_text(key: str, p: Text | param.String, value: Any) -> tuple[Any, Problem | None]:
    if isinstance(p, DateText) and isinstance(value, datetime | date):
        value = value.isoformat()  # YAML bodies turn 2024-01-01 into a date
    if not isinstance(value, str):
        got = "null (leave the key out instead)" if value is None else type(value).__name__
        return None, Problem(key, f"{key}: expected a string, got {got}", TYPE)
    low, high = getattr(p, "min_length", None), getattr(p, "max_length", None)
    if high is not None and len(value) > high:
        return None, Problem(key, f"{key}: at most {high} characters, got {len(value)}", VALUE)
    if low is not None and len(value.strip()) < low:
        need = "a non-empty string" if low == 1 else f"at least {low} non-blank characters"
        return None, Problem(key, f"{key}: required, {need}", VALUE)
    if "\x00" in value:
        return None, Problem(key, f"{key}: NUL characters are not allowed", VALUE)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        text = f"{key}: not valid Unicode text (a lone surrogate at {exc.start})"
        return None, Problem(key, text, VALUE)
    if isinstance(p, DateText):
        return _check_date(key, value)
    choices = getattr(p, "choices", None)
    if choices is not None and value not in choices:
        return None, Problem(key, f"{key}: {value!r} is not one of {', '.join(choices)}", VALUE)
    return value, None


def _check_date(key: str, value: str) -> tuple[Any, Problem | None]:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        text = f"{key}: cannot interpret {value!r} as a date (use 2024-01-01)"
        return None, Problem(key, text, VALUE)
    if ts is pd.NaT or not 1970 <= ts.year <= 2200:
        return None, Problem(key, f"{key}: {value!r} is out of range (1970-2200)", VALUE)
    return value, None


def _check_choice(key: str, p: param.Selector, value: Any) -> tuple[Any, Problem | None]:
    if not isinstance(value, str):
        got = "null" if value is None else f"{type(value).__name__} {value!r}"
        return None, Problem(key, f"{key}: expected a string, got {got}", TYPE)
    choices = list(p.objects)
    if value not in choices:
        text = f"{key}: {value!r} is not one of {', '.join(map(str, choices))}"
        return None, Problem(key, text, VALUE)
    return value, None


def check_value(key: str, p: param.Parameter, value: Any) -> tuple[Any, Problem | None]:
    """Read one present value against its declaration: ``(value, None)`` or ``(None, problem)``.

    ``null`` is the default for a parameter with ``allow_None``, except for text,
    where it is refused (leave the key out instead).
    """
    if value is None and p.allow_None and not isinstance(p, param.String):
        return p.default, None
    if isinstance(p, param.Boolean):
        if not isinstance(value, bool):
            return None, Problem(key, f"{key}: expected true or false, got {value!r}", TYPE)
        return value, None
    if isinstance(p, param.Number):
        return _check_number(key, p, value)
    if isinstance(p, param.String):
        return _check_text(key, p, value)
    if isinstance(p, param.Selector):
        return _check_choice(key, p, value)
    if isinstance(p, param.Dict) and not isinstance(value, dict):
        text = f"{key}: expected a mapping, got {type(value).__name__}"
        return None, Problem(key, text, TYPE)
    if isinstance(p, param.List) and not isinstance(value, list):
        text = f"{key}: expected a list, got {type(value).__name__}"
        return None, Problem(key, text, TYPE)
    return value, None


def _nested(p: param.Parameter) -> type[param.Parameterized] | None:
    """The model of a nested block (a ClassSelector of a Parameterized class), else None."""
    cls = p.class_ if isinstance(p, param.ClassSelector) else None
    if isinstance(cls, type) and issubclass(cls, param.Parameterized):
        return cls
    return None


def validate(
    model: type[param.Parameterized], data: dict[Any, Any], where: str = ""
) -> tuple[dict[str, Any], list[Problem]]:
    """Read ``data`` against ``model``: every declared key (defaults filled), every problem.

    Parameters
    ----------
    model : type of param.Parameterized
        The declaration.
    data : dict
        The mapping read (a parsed JSON or YAML body, a spec block).
    where : str
        Prefix of the unknown-key message (the block's name).

    Returns
    -------
    (dict, list of Problem)
        The values (each declared key; the default where absent) and the problems,
        all of them (unknown keys first, as one problem; a key of ``model.REQUIRED``
        that is absent is one; then each broken rule of ``model.RULES``).
    """
    declared = fields(model)
    problems: list[Problem] = []
    extra = None if getattr(model, "OPEN", False) else unknown_keys(data, tuple(declared), where)
    if extra is not None:
        problems.append(extra)
    values: dict[str, Any] = {}
    required = getattr(model, "REQUIRED", ())
    for key, p in declared.items():
        name = f"{where}.{key}" if where else key
        if key not in data:
            if key in required:
                problems.append(Problem(name, f"{name}: required", VALUE))
            values[key] = p.default
            continue
        nested = _nested(p)
        if nested is not None:
            if data[key] is None:
                values[key] = None
            elif isinstance(data[key], dict):
                values[key], inner = validate(nested, data[key], name)
                problems.extend(inner)
            else:
                got = type(data[key]).__name__
                problems.append(Problem(name, f"{name}: expected a mapping, got {got}", TYPE))
            continue
        value, problem = check_value(name, p, data[key])
        if problem is not None:
            problems.append(problem)
        values[key] = value
    problems.extend(_broken_rules(model, values, problems, where))
    return values, problems


# --------------------------------------------------------------------------- JSON schema


def _number_schema(p: param.Number) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "integer" if isinstance(p, param.Integer) else "number"}
    low, high = p.bounds or (None, None)
    low_in, high_in = p.inclusive_bounds
    if low is not None:
        out["minimum"] = low
        if not low_in:
            out["exclusiveMinimum"] = True
    if high is not None:
        out["maximum"] = high
        if not high_in:
            out["exclusiveMaximum"] = True
    return out


def _text_schema(p: param.String) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string"}
    if getattr(p, "min_length", None):
        out["minLength"] = p.min_length
    if getattr(p, "max_length", None) is not None:
        out["maxLength"] = p.max_length
    if isinstance(p, DateText):
        out["example"] = "2024-01-01"
    if getattr(p, "choices", None) is not None:
        out["enum"] = list(p.choices)
    return out


def parameter_schema(p: param.Parameter) -> dict[str, Any]:
    """The OpenAPI 3.0 schema of one declared parameter (its ``doc`` as description)."""
    if isinstance(p, param.Boolean):
        out: dict[str, Any] = {"type": "boolean"}
    elif isinstance(p, param.Number):
        out = _number_schema(p)
    elif isinstance(p, param.String):
        out = _text_schema(p)
    elif isinstance(p, param.Selector):
        out = {"type": "string", "enum": list(p.objects)}
    elif _nested(p) is not None:
        out = json_schema(_nested(p))
    elif isinstance(p, param.Dict):
        out = {"type": "object", "additionalProperties": True}
    elif isinstance(p, param.List):
        out = {"type": "array"}
        if p.item_type is str:
            out["items"] = {"type": "string"}
        elif isinstance(p.item_type, type) and issubclass(p.item_type, param.Parameterized):
            out["items"] = json_schema(p.item_type)
    elif isinstance(p, Shaped):
        out = dict(p.json or {})
    else:
        out = {}
    if p.allow_None and not isinstance(p, param.String) and out:
        out["nullable"] = True
    if p.doc:
        out["description"] = " ".join(p.doc.split())
    return out


def json_schema(model: type[param.Parameterized], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The OpenAPI 3.0 object schema of ``model``: unknown keys refused, bounds stated.

    A model may set the class attributes ``REQUIRED`` (keys always present),
    ``OPEN`` (``True``: other keys may appear, as in a response that carries a
    ledger row whole) and ``RULES`` (:class:`Rule` across keys, stated as ``x-rules``).

    Parameters
    ----------
    model : type of param.Parameterized
        The declaration.
    required : tuple of str
        Keys that must be present (besides ``model.REQUIRED``).

    Returns
    -------
    dict
        ``{"type": "object", "properties": ..., "additionalProperties": False}``.
    """
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {k: parameter_schema(p) for k, p in fields(model).items()},
        "additionalProperties": bool(getattr(model, "OPEN", False)),
    }
    required = (*getattr(model, "REQUIRED", ()), *required)
    if required:
        schema["required"] = list(required)
    doc = (model.__doc__ or "").strip().split("\n\n")[0]
    if doc:
        schema["description"] = " ".join(doc.split())
    if rules(model):
        schema["x-rules"] = [{"fields": list(r.fields), "rule": r.doc} for r in rules(model)]
    return schema
