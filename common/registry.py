"""Name -> constructor registries, after timm's ``register_model`` / ``create_model``.

One class serves every registry in the project: dataset converters, mask generators,
captioners, visual and text encoders, metric families. Registering a name twice raises
(two modules silently shadowing each other is a bug); an unknown name lists the known ones.
Entries may carry metadata (a text encoder's tokenizer, the tasks a metric family scores).
Modules that register entries can be named up front and are imported on the first lookup,
so importing a registry stays cheap (the command line starts without torch). A name of the
form ``package.module:Class`` is a plug-in: it is imported and used without registration
(a user's own mask generator in an engine config, a test's crashing one).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from common.errors import UniLSegError, UnknownNameError

T = TypeVar("T")


class Registry:
    """A name -> class (or factory) table with per-entry metadata.

    Args:
        kind (str): what is registered ("mask generator", "converter"), for messages.
        modules (Iterable[str]): modules that register entries, imported on first lookup.
    """

    def __init__(self, kind: str, modules: Iterable[str] = ()):
        self.kind = kind
        self._modules = list(modules)
        self._entries: dict[str, Callable[..., Any]] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._loaded = not self._modules

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` with metadata ``meta``."""

        def deco(obj: T) -> T:
            if name in self._entries:
                old = self._entries[name]
                raise ValueError(
                    f"{self.kind} {name!r} is already registered (by "
                    f"{getattr(old, '__module__', '?')}.{getattr(old, '__qualname__', old)})"
                )
            self._entries[name] = obj  # type: ignore[assignment]
            self._meta[name] = dict(meta)
            return obj

        return deco

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for mod in self._modules:
                importlib.import_module(mod)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._load()
        return sorted(self._entries)

    def get(self, name: str) -> Callable[..., Any]:
        """The registered class or factory.

        Raises:
            UnknownNameError: ``name`` is not registered (the message lists the known names).
        """
        self._load()
        if name not in self._entries and ":" in name:
            return self._plugin(name)
        if name not in self._entries:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names())} (or package.module:Class)"
            )
        return self._entries[name]

    def _plugin(self, name: str) -> Callable[..., Any]:
        module, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise UnknownNameError(f"{self.kind} {name!r}: cannot import it ({e})") from e

    def meta(self, name: str) -> dict[str, Any]:
        """The metadata given at registration ({} for a plug-in)."""
        self.get(name)
        return self._meta.get(name, {})

    def items(self) -> list[tuple[str, Callable[..., Any]]]:
        """(name, entry) pairs, sorted by name."""
        self._load()
        return sorted(self._entries.items())

    def build(self, name: str, **params: Any) -> Any:
        """Builds an instance; a parameter the class does not take is a user error naming both."""
        cls = self.get(name)
        try:  # checked against the signature, so a TypeError raised inside stays a bug
            inspect.signature(cls).bind(**params)
        except TypeError as e:
            raise UniLSegError(f"{self.kind} {name!r}: {e}") from e
        return cls(**params)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries
