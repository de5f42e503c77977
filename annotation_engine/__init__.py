"""The annotation engine: unlabeled images -> (expression, mask) targets, in Ray actors.

Modules, one job each:
- ``config``: typed EngineConfig (generator, captioner, filters, granularity, resources),
  YAML presets in ``presets/`` (weightfree, sam-tiny-hf, sam-blip), ``engine_version()``.
- ``registry``: MASK_GENERATORS and CAPTIONERS (duplicate names fail; tiny models included).
- ``mask_generators/``: ``superpixel`` (SLIC + colour/edge merging, weight-free), ``sam`` /
  ``sam-tiny`` (segment-anything automatic masks), ``unilseg`` (a UniLSeg checkpoint
  segmenting given expressions).
- ``captioners/``: ``hf`` (any transformers image-to-text model on region crops) and
  ``attributes`` (colour names; the referring-expression writer every captioner goes through).
- ``filters``: area, score thresholds, mask NMS, CLIP text-region score.
- ``granularity``: nested masks become part targets ("the <x> of the <y>").
- ``engine``: ``Engine(config).annotate(rgb) -> list[shards.format.Target]``.
- ``actor``: EngineWorker (builds the engine once, ``(ok, result)`` per image) and EnginePool
  (N actors, dead ones replaced and their work resubmitted).
- ``run``: ``annotate_images(images, out, ...)``, the incremental driver and single writer
  (CLI: ``unilseg annotate``).
"""
