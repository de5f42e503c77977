"""The annotation engine: unlabeled images -> (expression, mask) targets, in Ray actors.

Modules, one job each:
- ``engine_config``: what the engine is: typed EngineConfig (generator, captioner, filters, granularity, resources),
  YAML presets in ``presets/`` (weightfree, sam-tiny-hf, sam-blip), ``engine_version()``.
- ``registry``: MASK_GENERATORS and CAPTIONERS (duplicate names fail; tiny models included).
- ``mask_generators/``: ``superpixel`` (SLIC + colour/edge merging, weight-free), ``sam`` / ``sam2`` /
  ``sam-tiny`` (segment-anything automatic masks; our exact loop in ``sam_amg``, with its
  decoder ``sam_decoder`` and mask post-processing ``sam_postprocess``), ``unilseg`` (a UniLSeg checkpoint
  segmenting given expressions).
- ``captioners/``: ``hf`` (any transformers image-to-text model on region crops) and
  ``attributes`` (colour names; the referring-expression writer every captioner goes through).
- ``filters``: area, score thresholds, mask NMS, CLIP text-region score.
- ``granularity``: nested masks become part targets ("the <x> of the <y>").
- ``engine``: ``Engine(config).annotate(rgb) -> list[shards.format.Target]``.
- ``image_task``: one image through the engine (``annotate_one``, ``annotate_batch``), or alone
  in a child process (``annotate_isolated``: how a poison image is told from an innocent one).
- the Ray Data pipeline of an annotation run: ``sources`` (listing, source index, read + hash),
  ``actor`` (``EngineActor``, the engine stage), ``sink`` (``ShardDatasink``, parallel writers),
  ``ledger`` (the run's bookkeeping actor), ``driver`` (``annotate_images``: plans, runs, commits;
  CLI: ``unilseg annotate``), ``run_config`` (AnnotateConfig: how a run goes, the settings of
  ``unilseg annotate`` and the pipeline YAML's ``annotate:`` section).
"""
