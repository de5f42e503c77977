"""Typed engine configuration, loaded from YAML presets or dicts, and the engine version.

A config is data (nanoGPT's GPTConfig habit): one dataclass per component, built with
``Cfg(**d)`` so an unknown key fails loudly. A YAML file or dict may name ``base: PRESET``
to start from a preset and override some fields (deep merge).

The engine version is a hash of everything that changes the output: the config (minus
resources and device, which only change speed), a code version bumped when the engine's behaviour
changes, and the identity of every local model file or folder the config names (size and
a hash of its head and tail, so a replaced checkpoint re-annotates without hashing GBs).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common.errors import UnknownNameError
from common.settings import SettingsError, from_dict
from shards.images import DEFAULT_MAX_PIXELS

PRESETS_DIR = Path(__file__).parent / "presets"
DEFAULT_ENGINE = "weightfree"  # the preset that runs anywhere: no checkpoint, no download
# Bump when a change in this package changes what an engine config produces.
ENGINE_CODE_VERSION = 2
_IDENTITY_BYTES = 1 << 20  # bytes hashed at each end of a model file


@dataclass
class GeneratorConfig:
    """A mask generator (or mask source) from the registry."""

    name: str = "superpixel"  # registered name: superpixel, sam, sam-tiny, unilseg
    params: dict[str, Any] = field(default_factory=dict)  # keyword arguments of its class


@dataclass
class CaptionerConfig:
    """A captioner from the registry; its names are made referential by the attribute writer."""

    name: str = "attributes"  # registered name: attributes, hf
    params: dict[str, Any] = field(default_factory=dict)  # keyword arguments of its class


@dataclass
class FilterConfig:
    """Which proposals become targets."""

    min_area: float = 0.002  # smallest mask, as a fraction of the image area
    max_area: float = 0.95  # largest mask (fraction): the whole image is no target
    min_scores: dict[str, float] = field(default_factory=dict)  # e.g. predicted_iou: 0.88 (missing score: kept)
    nms_iou: float = 0.85  # a mask overlapping a better one by more than this IoU is a duplicate
    rank_by: str = "area"  # score that orders NMS and max_targets ("area" = larger first)
    max_targets: int = 24  # at most this many targets per image
    clip_model: str | None = None  # transformers CLIP hub id or local dir: adds scores["clip"]
    clip_min_score: float | None = None  # drop targets whose CLIP text-region score is lower


@dataclass
class GranularityConfig:
    """How nested masks become part targets."""

    parts: bool = True  # False: every mask is an instance target
    containment: float = 0.9  # fraction of a mask inside a larger one that makes it a part
    max_part_ratio: float = 0.6  # a part covers at most this fraction of its whole


@dataclass
class ResourcesConfig:
    """Ray resources of each actor (no effect on the output, so not in the engine version)."""

    num_cpus: float = 1.0  # CPUs reserved per actor
    num_gpus: float = 0.0  # GPUs per actor (fractions share a GPU)
    torch_threads: int = 1  # torch/OMP threads inside each actor
    batch_size: int = 2  # images per actor call
    inflight: int = 2  # batches queued per actor (keeps actors busy while the driver writes)
    niceness: int | None = None  # OS priority of the actors; None: the caller's (Ray would start them at 15)


@dataclass
class EngineConfig:
    """The whole engine: generator -> filters -> granularity -> captions -> scores."""

    name: str = DEFAULT_ENGINE  # written as every target's source ("auto/<name>")
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    captioner: CaptionerConfig = field(default_factory=CaptionerConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    granularity: GranularityConfig = field(default_factory=GranularityConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    max_side: int = 512  # the generator and captioner see the image resized to this longest side
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger inputs are quarantined as decompression bombs
    device: str = "cpu"  # torch device of the models; the driver uses "cuda" on GPU actors, "cpu" otherwise

    def __post_init__(self) -> None:
        for f, cls in _NESTED.items():
            value = getattr(self, f)
            if isinstance(value, dict):
                setattr(self, f, from_dict(cls, value, f"engine config section {f!r}"))
        if self.max_side < 32:
            raise SettingsError(f"max_side must be >= 32, got {self.max_side}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EngineConfig:
        """Builds a config; ``base: PRESET`` starts from a preset; an unknown key raises SettingsError."""
        d = copy.deepcopy(d)
        base = d.pop("base", None)
        if base is not None:
            d = _deep_merge(load_engine_config(base).to_dict(), d)
        return from_dict(cls, _expand(d), "engine config")


_NESTED = {
    "generator": GeneratorConfig,
    "captioner": CaptionerConfig,
    "filters": FilterConfig,
    "granularity": GranularityConfig,
    "resources": ResourcesConfig,
}


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        # params dicts are replaced whole when the component changes, merged otherwise
        if (
            isinstance(v, dict)
            and isinstance(out.get(k), dict)
            and not (k in ("generator", "captioner") and v.get("name", out[k].get("name")) != out[k].get("name"))
        ):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _expand(v: Any) -> Any:
    """Expands ``~`` and ``$VARS`` in strings (checkpoint paths in presets)."""
    if isinstance(v, str):
        return os.path.expanduser(os.path.expandvars(v)) if ("$" in v or v.startswith("~")) else v
    if isinstance(v, dict):
        return {k: _expand(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_expand(x) for x in v]
    return v


def list_presets() -> list[str]:
    """Names of the YAML presets shipped in annotation_engine/presets."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_engine_config(engine: str | os.PathLike | dict[str, Any] | EngineConfig) -> EngineConfig:
    """A config from a preset name, a YAML path, a dict, or a config (returned as is).

    Raises:
        UnknownNameError: an unknown preset name.
        SettingsError: an unknown key anywhere in the config.
    """
    if isinstance(engine, EngineConfig):
        return engine
    if isinstance(engine, dict):
        return EngineConfig.from_dict(engine)
    path = Path(engine)
    if not path.suffix and not path.exists():
        path = PRESETS_DIR / f"{engine}.yaml"
        if not path.exists():
            raise UnknownNameError(
                f"unknown engine preset {str(engine)!r}; presets: {', '.join(list_presets())} (or pass a YAML file)"
            )
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    if not isinstance(doc, dict):
        raise SettingsError(f"{path}: an engine config is a mapping, got {type(doc).__name__}")
    return EngineConfig.from_dict(doc)


def path_identity(path: str | os.PathLike) -> str:
    """Identity of a local model file or folder: sizes and a hash of each file's head and tail."""
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    h = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.relative_to(p) if p.is_dir() else f.name}:{size}".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(_IDENTITY_BYTES))
            if size > 2 * _IDENTITY_BYTES:
                fh.seek(-_IDENTITY_BYTES, os.SEEK_END)
                h.update(fh.read())
    return h.hexdigest()[:16]


def unset_variables(cfg: EngineConfig) -> list[str]:
    """``$VARS`` left in the config's strings because the environment does not define them."""
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str):
            found.extend(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", v))

    walk(cfg.to_dict())
    return found


def model_identities(cfg: EngineConfig) -> dict[str, str]:
    """Identity of every string in the config that names an existing local file or folder."""
    out: dict[str, str] = {}

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else k, x)
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(f"{prefix}[{i}]", x)
        elif isinstance(v, str) and ("/" in v or os.sep in v) and os.path.exists(v):
            out[prefix] = path_identity(v)

    d = cfg.to_dict()
    d.pop("resources")
    walk("", d)
    return out


def engine_version(cfg: EngineConfig) -> str:
    """16 hex digits that change whenever the engine's output can change (see module doc)."""
    d = cfg.to_dict()
    d.pop("resources")  # speed only
    d.pop("device")  # where it runs, not what it computes
    params = d["generator"]["params"]
    if params.get("precision") == "fp32":  # the default, exact path: same output as not naming it
        params.pop("precision")
    params.pop("encoder_batch", None)  # images per encoder call: speed (and last-bit rounding, like device)
    doc = {"code": ENGINE_CODE_VERSION, "config": d, "models": model_identities(cfg)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]
