"""Registries of mask generators and captioners (timm's @register_model habit).

A mask generator is a class built as ``cls(**params)`` with ``generate(rgb) -> list[Proposal]``;
a captioner is built the same way with ``describe(rgb, masks) -> list[str | None]``. Both
expose ``identity() -> dict`` (name, code/library version, model identity) that goes into
every target's provenance and into the engine version. Tiny test models live in the same
registries, so tests run the production path.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class Registry:
    """Name -> class; a duplicate name fails, an unknown one names the known ones.

    Args:
        kind (str): what is registered ("mask generator", "captioner"), for messages.
        modules (list[str]): modules that register entries, imported on first lookup so that
            importing the registry stays cheap.
    """

    def __init__(self, kind: str, modules: list[str]):
        self.kind = kind
        self._modules = modules
        self._entries: dict[str, Callable[..., Any]] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering a class (or factory) under ``name``."""

        def deco(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj  # type: ignore[assignment]
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
        """The registered class or factory."""
        self._load()
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries))}")
        return self._entries[name]

    def build(self, name: str, **params: Any) -> Any:
        """Builds an instance; a parameter the class does not take fails loudly (TypeError)."""
        cls = self.get(name)
        try:
            return cls(**params)
        except TypeError as e:
            raise TypeError(f"{self.kind} {name!r}: {e}") from e


MASK_GENERATORS = Registry("mask generator", [
    "annotation_engine.mask_generators.superpixel",
    "annotation_engine.mask_generators.sam",
    "annotation_engine.mask_generators.sam2_generator",
    "annotation_engine.mask_generators.unilseg_source",
])
CAPTIONERS = Registry("captioner", [
    "annotation_engine.captioners.attributes",
    "annotation_engine.captioners.hf",
])
