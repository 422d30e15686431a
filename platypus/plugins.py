"""Plugins by name: built-ins plus an entry-point group, imported on first use.

Adapters (``platypus.adapters``) and webhook decoders (``platypus.sources``) are
found the same way, as faust maps transport names to ``"module:Class"``: a
third-party package adds one with an entry point and no engine edit.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from platypus.exceptions import ConfigurationError

__all__ = ["PluginRegistry"]

T = TypeVar("T")


class PluginRegistry(Generic[T]):
    """Classes that subclass ``base`` by name; ``kind`` names them in messages."""

    def __init__(
        self, base: type[T], kind: str, plugins: Mapping[str, str | type[T]] | None = None
    ) -> None:
        self._base = base
        self._kind = kind
        self._refs: dict[str, str | type[T]] = dict(plugins or {})
        self._loaded: dict[str, type[T]] = {}

    def _with_entry_points(self, group: str, builtin: Mapping[str, str]) -> None:
        self._refs = {**builtin, **{ep.name: ep.value for ep in entry_points(group=group)}}

    def register(self, name: str, plugin: str | type[T]) -> None:
        """Add a class (or a ``"module:Class"`` reference) under ``name``."""
        self._refs[name] = plugin
        self._loaded.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._refs

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._refs))

    def get(self, name: str) -> type[T]:
        """The class called ``name``, imported on first use."""
        if name in self._loaded:
            return self._loaded[name]
        ref = self._refs.get(name)
        if ref is None:
            close = difflib.get_close_matches(name, list(self._refs), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigurationError(
                f"unknown {self._kind} {name!r} (installed: {', '.join(self)}){hint}"
            )
        plugin = self._import(name, ref) if isinstance(ref, str) else ref
        self._loaded[name] = plugin
        return plugin

    def _import(self, name: str, ref: str) -> type[T]:
        module_name, _, attr = ref.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigurationError(
                f"{self._kind} {name!r} cannot be imported from {module_name!r}: {exc}. "
                "Install the package that provides it."
            ) from exc
        plugin = getattr(module, attr, None)
        if not (isinstance(plugin, type) and issubclass(plugin, self._base)):
            article = "an" if self._base.__name__[0] in "AEIOU" else "a"
            raise ConfigurationError(
                f"{ref!r} ({self._kind} {name!r}) is not {article} {self._base.__name__} subclass"
            )
        return plugin
