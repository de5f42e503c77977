"""The annotation engine: an RGB image -> shards-format targets, models built once.

Pipeline per image (working resolution = longest side ``max_side``):
mask generator -> filters (area, scores, mask NMS, max count) -> granularity (nested masks
become parts) -> captioner names each region -> the attribute writer makes the names
referential -> optional CLIP text-region score (and threshold) -> masks resized to the full
image and RLE-encoded. Every target carries its scores and its provenance (engine version,
generator and captioner with their versions and models, parent target).
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import numpy as np

from annotation_engine.captioners.attributes import GENERIC, referring_texts, region_attributes
from annotation_engine.engine_config import DEFAULT_ENGINE, EngineConfig, engine_version, load_engine_config
from annotation_engine.filters import ClipScorer, filter_proposals
from annotation_engine.granularity import assign_parents, part_or_instance, touching
from annotation_engine.regions import resize_image, resize_mask
from annotation_engine.registry import CAPTIONERS, MASK_GENERATORS
from shards.format import Target
from shards.rle import mask_to_rle

log = logging.getLogger(__name__)
TASK = "auto"


def sample_key(sha256: str, version: str) -> str:
    """Deterministic, dot-free key of an image annotated by an engine version: a re-run, or a run
    resumed after a kill, can never write an image twice, and a new engine version annotates it
    again beside the old targets."""
    return f"{sha256[:24]}-{version[:12]}"


def _build(registry, name: str, params: dict[str, Any], device: str) -> Any:
    """Builds a registry entry, passing the engine's device when the class takes one."""
    cls = registry.get(name)
    params = dict(params)
    if "device" not in params and "device" in inspect.signature(cls).parameters:
        params["device"] = device
    return registry.build(name, **params)


def _check_rgb(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")


class Engine:
    """Built once from a config (preset name, YAML path, dict or EngineConfig).

    Attributes:
        config (EngineConfig): the resolved config.
        version (str): engine version (annotation_engine.engine_config.engine_version).
        source (str): the ``source`` of every target, ``auto/<config name>``.
        provenance (dict): what every target's provenance starts with.
    """

    def __init__(self, config: str | dict[str, Any] | EngineConfig = DEFAULT_ENGINE):
        self.config = cfg = load_engine_config(config)
        self.version = engine_version(cfg)
        self.source = f"auto/{cfg.name}"
        self.generator = _build(MASK_GENERATORS, cfg.generator.name, cfg.generator.params, cfg.device)
        self.captioner = _build(CAPTIONERS, cfg.captioner.name, cfg.captioner.params, cfg.device)
        self.clip = ClipScorer(cfg.filters.clip_model, cfg.device) if cfg.filters.clip_model else None
        self.provenance: dict[str, Any] = {
            "engine": cfg.name,
            "engine_version": self.version,
            **self.generator.identity(),
            **self.captioner.identity(),
            **(self.clip.identity() if self.clip else {}),
        }

    def annotate(self, rgb: np.ndarray) -> list[Target]:
        """(H, W, 3) uint8 RGB -> targets whose masks are (H, W) COCO RLE; may be empty."""
        _check_rgb(rgb)
        work = resize_image(rgb, self.config.max_side)
        return self._targets(rgb, work, self.generator.generate(work))

    def annotate_batch(self, images: list[np.ndarray]) -> list[list[Target]]:
        """Several images; a generator with ``generate_batch`` sees them together (one
        image-encoder call on a GPU), the rest runs per image. Same targets as ``annotate``
        per image wherever the generator's batch path is exact (``sam`` on CPU).

        Raises:
            ValueError: an image is not (H, W, 3) uint8 RGB (nothing is annotated).
        """
        for rgb in images:
            _check_rgb(rgb)
        works = [resize_image(rgb, self.config.max_side) for rgb in images]
        batch = getattr(self.generator, "generate_batch", None)
        proposals = (
            batch(works) if batch is not None and len(works) > 1 else [self.generator.generate(w) for w in works]
        )
        return [self._targets(rgb, work, props) for rgb, work, props in zip(images, works, proposals)]

    def _targets(self, rgb: np.ndarray, work: np.ndarray, generated: list) -> list[Target]:
        """Proposals of the working image -> filtered, captioned targets at full size."""
        h, w = rgb.shape[:2]
        proposals = filter_proposals(generated, self.config.filters)
        if not proposals:
            return []
        masks = [p.mask for p in proposals]
        g = self.config.granularity
        parents = assign_parents(masks, g.containment, g.max_part_ratio) if g.parts else [None] * len(masks)
        texts = self._texts(work, proposals, parents)
        # a region no expression singles out is no target; its parts lose their parent
        alive = [t is not None for t in texts]
        parents = [p if p is not None and alive[p] else None for p in parents]
        scores = [dict(p.scores) for p in proposals]
        if self.clip is not None:
            idx = [i for i in range(len(masks)) if alive[i]]
            for i, c in zip(idx, self.clip.score(work, [masks[i] for i in idx], [texts[i][0] for i in idx])):
                scores[i]["clip"] = c
        keep = [
            i
            for i in range(len(proposals))
            if alive[i]
            and (self.config.filters.clip_min_score is None or scores[i]["clip"] >= self.config.filters.clip_min_score)
        ]
        index = {old: new for new, old in enumerate(keep)}
        targets = []
        for i in keep:
            full = resize_mask(masks[i], h, w)
            if not full.any():
                continue
            parent = parents[i] if parents[i] in index else None
            targets.append(
                Target(
                    texts=texts[i],
                    mask=mask_to_rle(full),
                    task=TASK,
                    granularity=part_or_instance(parent),
                    source=self.source,
                    scores={**scores[i], "area_fraction": round(float(full.mean()), 6)},
                    provenance={**self.provenance, "parent": index.get(parent) if parent is not None else None},
                )
            )
        return targets

    def _texts(self, work: np.ndarray, proposals: list, parents: list[int | None]) -> list[list[str] | None]:
        """Expressions per proposal: its own texts (expression-driven sources), else the
        captioner's names made referential by the attribute writer."""
        masks = [p.mask for p in proposals]
        attrs = region_attributes(work, masks)
        names = self.captioner.describe(work, masks, attrs)
        names = [n if n else f"{a.colour} {GENERIC}" for n, a in zip(names, attrs)]  # unreadable caption
        written = referring_texts(attrs, names, parents, touching(masks))
        return [list(p.texts) if p.texts else t for p, t in zip(proposals, written)]
