"""One small generic registry per extension point (algorithms, architectures, formats …), filled explicitly."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from oculi.errors import RegistryError

T = TypeVar("T")


def closest(name: str, candidates: list[str], n: int = 3) -> list[str]:
    """Return up to ``n`` candidates closest to ``name`` (case-insensitive), best first."""
    lowered = {c.lower(): c for c in candidates}
    return [lowered[m] for m in difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)]


class Registry(Generic[T]):
    """A named collection of entries of one kind. ``kind`` is used in messages ("algorithm", …);
    ``list_command`` tells the user how to see every entry."""

    def __init__(self, kind: str, list_command: str | None = None) -> None:
        self.kind = kind
        self.list_command = list_command
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name``; registering a name twice is a programming error."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@registry.decorator("name")`` form of :meth:`register`."""

        def wrap(entry: T) -> T:
            return self.register(name, entry)

        return wrap

    def get(self, name: str) -> T:
        """Return the entry named ``name``; an unknown name raises an error listing the closest names."""
        try:
            return self._entries[name]
        except KeyError:
            pass
        near = closest(name, list(self._entries))
        hint = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        see = f" See all with `{self.list_command}`." if self.list_command else ""
        valid = ", ".join(sorted(self._entries))
        raise RegistryError(f"Unknown {self.kind} {name!r}.{hint} Valid: {valid}.{see}") from None

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
