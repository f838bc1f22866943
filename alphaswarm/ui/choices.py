"""Pickers whose choices are read again: the user's choice survives the refresh."""

from __future__ import annotations

from typing import Any


def show_choices(select: Any, options: dict[str, Any]) -> None:
    """Give ``select`` new ``options`` (label to value), keeping its value when still offered.

    Otherwise the first option is chosen (nothing when there are none).

    Parameters
    ----------
    select : panel.widgets.Select
        The picker.
    options : dict
        Labels to values, in the order shown.
    """
    value = select.value
    select.options = options
    if value in options.values():
        select.value = value
    elif options:
        select.value = next(iter(options.values()))
