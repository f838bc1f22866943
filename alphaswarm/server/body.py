"""Request bodies: JSON first, then YAML (safe, no aliases), whatever the Content-Type says.

YAML has a budget: at most :data:`MAX_YAML_BYTES`, :data:`MAX_YAML_DEPTH` levels
and :data:`MAX_YAML_NODES` nodes, and no anchors/aliases; a cheap event pass
(libyaml when installed) checks it before any document is built. Handlers parse
bodies over :data:`INLINE_PARSE_BYTES` off the IOLoop thread.

The tutorial posts JSON with curl's default form encoding
(``-d '{"starting_cash":100000}'``) and the first-bot tutorial posts a YAML file
as ``application/json`` with ``-d @bot.yaml`` (curl strips the newlines of such a
file). Both must work, so the Content-Type is not consulted.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from alphaswarm.bots import MAX_SPEC_VALUES, Bot
from alphaswarm.server.errors import bad_request

#: Bodies up to this size are parsed on the IOLoop thread; larger ones in a pool.
INLINE_PARSE_BYTES = 4 * 1024
#: Largest body tried as YAML (JSON may be as large as the body limit).
MAX_YAML_BYTES = 128 * 1024 if yaml.__with_libyaml__ else 32 * 1024
#: Deepest YAML nesting accepted.
MAX_YAML_DEPTH = 64
#: Most YAML nodes (scalars and collections) accepted.
MAX_YAML_NODES = MAX_SPEC_VALUES
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", None) if yaml.__with_libyaml__ else None
_OPEN_EVENTS = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSE_EVENTS = (yaml.SequenceEndEvent, yaml.MappingEndEvent)
_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses anchors/aliases (no "billion laughs" bodies)."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases are not accepted in request bodies", event.start_mark
            )
        return super().compose_node(parent, index)


def _json(text: str) -> tuple[Any, str | None]:
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except RecursionError:
        return None, "JSON: nested too deeply"
    except ValueError as exc:  # an integer literal over Python's 4300-digit limit
        return None, f"JSON: {exc}"


def _yaml_budget(text: str) -> str | None:
    """Why ``text`` is over the YAML budget (``None`` when within it)."""
    if len(text) > MAX_YAML_BYTES:
        return f"YAML: bodies over {MAX_YAML_BYTES} bytes are not parsed as YAML (send JSON)"
    if _FAST_LOADER is None:
        return None  # the pure-Python loader checks aliases and depth while composing
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_FAST_LOADER):
        if isinstance(event, yaml.AliasEvent):
            return "YAML: aliases are not accepted in request bodies"
        if isinstance(event, _NODE_EVENTS):
            nodes += 1
            if nodes > MAX_YAML_NODES:
                return f"YAML: more than {MAX_YAML_NODES} values"
        if isinstance(event, _OPEN_EVENTS):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                return f"YAML: nested deeper than {MAX_YAML_DEPTH} levels"
        elif isinstance(event, _CLOSE_EVENTS):
            depth -= 1
    return None


def _yaml(text: str) -> tuple[Any, str | None]:
    try:
        over = _yaml_budget(text)
        if over is not None:
            return None, over
        if _FAST_LOADER is not None:
            return yaml.load(text, Loader=_FAST_LOADER), None  # noqa: S506 - libyaml's safe loader
        return yaml.load(text, Loader=_NoAliasLoader), None  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return None, f"YAML: {problem}{where}"
    except RecursionError:
        return None, "YAML: nested too deeply"
    except (ValueError, OverflowError) as exc:  # a scalar that resolves but cannot be built
        return None, f"YAML: {exc}"


_TOP_KEYS = sorted(Bot.TOP_KEYS, key=len, reverse=True)
_GLUED_TOP_KEY = re.compile(
    r"(?<=\S)(?=(?:" + "|".join(map(re.escape, _TOP_KEYS)) + r"):(?:\s|$|- ))"
)
_INDENTED_KEY = re.compile(r"(?<=\S)(?= {2,}(?:[A-Za-z_][\w-]*:(?:\s|$)|- ))")
_GLUED_ITEM = re.compile(r"(?<=[^\s-])(?=- )")


def restore_newlines(text: str) -> str:
    """Best-effort repair of a YAML bot file whose newlines were stripped (``curl -d @file``).

    Indentation survives the stripping, so a nested key or list item is the run of
    two or more spaces before ``key:`` or ``- ``; a top-level key is recognised by
    name (:attr:`alphaswarm.bots.Bot.TOP_KEYS`) where it is glued to the previous value.
    """
    text = _GLUED_TOP_KEY.sub("\n", text)
    text = _INDENTED_KEY.sub("\n", text)
    return _GLUED_ITEM.sub("\n", text)


def parse_body(body: bytes, *, required: bool = True, bot_spec: bool = False) -> Any:
    """Parse a request body as JSON, else YAML; an empty body is ``{}`` unless ``required``.

    Parameters
    ----------
    body : bytes
        The raw body.
    required : bool
        Whether an empty body is an error.
    bot_spec : bool
        Also try to repair a bot file whose newlines curl stripped.

    Raises
    ------
    ApiError
        400 naming where the JSON and the YAML attempts failed.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(
            f"the body is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    if not body:
        if required:
            raise bad_request("the body is empty: send a JSON (or YAML) document")
        return {}
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        # whitespace or control characters only: not "no options" (an empty body is)
        raise bad_request(
            f"the body holds no document ({len(body)} blank or control byte(s)); send a JSON "
            "object, or no body at all"
        )
    data, json_error = _json(text)
    if json_error is None:
        return data
    data, yaml_error = _yaml(text)
    if yaml_error is None and (isinstance(data, dict) or not bot_spec):
        return data
    if bot_spec and "\n" not in text and "\r" not in text:
        repaired, repair_error = _yaml(restore_newlines(text))
        if repair_error is None and isinstance(repaired, dict):
            return repaired
    if yaml_error is None:
        return data  # parsed, but not a mapping: the caller says what it expected
    raise bad_request(
        f"the body is neither JSON nor YAML ({json_error}; {yaml_error})",
        attempts={"json": json_error, "yaml": yaml_error},
    )
