"""A helper object of which each event loop has one."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, ClassVar, Self

if TYPE_CHECKING:
    import asyncio


class _PerLoop:
    """A helper of which each event loop has one, made on first use."""

    _by_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._by_loop = weakref.WeakKeyDictionary()  # one registry per kind

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Self:
        """The one of ``loop`` (call on the loop's thread)."""
        one = cls._by_loop.get(loop)
        if one is None:
            one = cls._by_loop.setdefault(loop, cls(loop))
        return one
