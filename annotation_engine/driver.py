"""The annotation driver: images -> engine in Ray actors -> shards (the single writer).

Incremental: an image is done for an engine when its (sha256, engine version) pair is in
the split's manifest, or in its quarantine as "no targets" or "bad input" for that
version (an image with zero targets has no manifest row, and a corrupt file stays
corrupt: without these records both would be redone on every run). Keys are
``<sha256[:24]>-<version[:12]>``: a re-run, or a run resumed after a kill, can never write
an image twice, and a new engine version annotates it again beside the old targets.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterator

import fsspec
from tqdm import tqdm

from annotation_engine.annotate_config import AnnotateConfig
from annotation_engine.config import engine_version, load_engine_config, unset_variables
from shards.errors import MissingInputError, UniLSegError
from shards.format import FormatError, ImageInfo, Sample
from shards.images import IMAGE_FILE_SUFFIXES, sha256_bytes
from shards.manifest import done_images, read_quarantine
from shards.writer import ShardWriter

log = logging.getLogger(__name__)
# Quarantine kinds that mark an image as processed for an engine version (not retried).
DONE_KINDS = frozenset({"no_targets", "bad_input"})


def sample_key(sha256: str, version: str) -> str:
    """Deterministic, dot-free key of an image annotated by an engine version."""
    return f"{sha256[:24]}-{version[:12]}"


def list_images(images: str | os.PathLike | list[str]) -> list[str]:
    """Image paths or URLs from a folder, a glob, an fsspec URL (folder or glob), or a list.

    A folder is searched recursively for image extensions; an explicitly named file is kept
    whatever its extension (a bad one is quarantined, not silently dropped).

    Raises:
        FileNotFoundError: a local path or pattern that matches nothing.
    """
    if isinstance(images, (list, tuple)):
        return [p for x in images for p in list_images(x)]
    s = str(images)
    if "://" in s:
        fs, root = fsspec.core.url_to_fs(s)
        if glob.has_magic(root):
            found = fs.glob(root)
        elif fs.isdir(root):
            found = [p for p in fs.find(root) if os.path.splitext(p)[1].lower() in IMAGE_FILE_SUFFIXES]
        else:
            return [s]
        return sorted(fs.unstrip_protocol(p) for p in found)
    if glob.has_magic(s):
        found = sorted(p for p in glob.glob(s, recursive=True) if os.path.isfile(p))
    elif os.path.isdir(s):
        found = sorted(str(p) for p in Path(s).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_FILE_SUFFIXES)
    elif os.path.exists(s):
        found = [s]
    else:
        raise MissingInputError(f"no image at {s}")
    if not found and glob.has_magic(s):
        raise MissingInputError(f"no file matches {s}")
    return found


def images_fingerprint(images: str | os.PathLike) -> Any:
    """What identifies a set of unlabeled inputs for "is there anything new?": a local folder by
    its files' names, sizes and modification times; anything else (a URL, a glob) by its name,
    since listing it is the annotation's own first step."""
    path = Path(images)
    if "://" in str(images) or not path.is_dir():
        return str(images)
    return sorted((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in path.rglob("*") if p.is_file())


def read_bytes(path: str) -> bytes:
    """Bytes of a local path or fsspec URL."""
    if "://" in path:
        with fsspec.open(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def quarantined_done(split_dir: Path) -> set[tuple[str, str]]:
    """(sha256, engine version) pairs the quarantine marks as processed (DONE_KINDS)."""
    return {(r["sha256"], r["engine_version"]) for r in read_quarantine(split_dir)
            if r.get("kind") in DONE_KINDS and r.get("sha256") and r.get("engine_version")}


def _pending(paths: list[str], done: set, version: str, counts: dict[str, int],
             unreadable: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(path, sha256) of the images still to annotate; one per distinct content."""
    todo, seen = [], set()
    for p in paths:
        try:
            sha = sha256_bytes(read_bytes(p))
        except OSError as e:
            unreadable.append((p, f"cannot read: {e}"))
            continue
        if (sha, version) in done or sha in seen:
            counts["skipped"] += 1
            continue
        seen.add(sha)
        todo.append((p, sha))
    return todo


def annotate_images(images: str | list[str], out: str, *, progress: bool = True, **settings: Any) -> dict[str, Any]:
    """Annotates unlabeled images into ``out/split`` with a pool of Ray actors.

    Args:
        images: folder, glob, fsspec URL, or list of paths/URLs.
        out: dataset directory (``DATA_ROOT/NAME``); shards go to ``out/split``.
        progress: show a progress bar.
        **settings: AnnotateConfig fields (engine, split, actors, gpus_per_actor, max_count,
            ray_address); an unknown one fails.

    Returns:
        dict: the split's dataset.json plus ``written``, ``skipped``, ``quarantined`` (this
        run), ``engine_version`` and ``stats`` (seconds spent listing/hashing, starting the
        actors and annotating; peak RSS of each actor in MB; actor restarts).
    """
    run = AnnotateConfig.from_dict(settings)
    engine, split, actors, gpus_per_actor = run.engine, run.split, run.actors, run.gpus_per_actor
    ray_address, max_count = run.ray_address, run.max_count
    t0 = time.perf_counter()
    cfg = load_engine_config(engine)
    version = engine_version(cfg)
    split_dir = Path(out) / split
    paths = list_images(images)
    counts = {"written": 0, "skipped": 0, "quarantined": 0}
    done = done_images(split_dir) | quarantined_done(split_dir)
    unreadable: list[tuple[str, str]] = []
    todo = _pending(paths, done, version, counts, unreadable)
    stats: dict[str, Any] = {"list_s": round(time.perf_counter() - t0, 3)}
    source = f"auto/{cfg.name}"
    with ShardWriter(split_dir, max_count=max_count) as writer:
        for path, reason in unreadable:
            writer.quarantine(path, reason, kind="unreadable", engine_version=version)
            counts["quarantined"] += 1
        todo = [(p, sha) for p, sha in todo if not writer.has(sample_key(sha, version))]
        if todo:
            for item, ok, result in _run_pool(todo, cfg, version, actors, gpus_per_actor, ray_address, progress,
                                              stats):
                _record(writer, item, ok, result, version, source, counts)
        summary = writer.close()
    stats["total_s"] = round(time.perf_counter() - t0, 3)
    summary.update(counts, engine_version=version, stats=stats)
    return summary


def _run_pool(todo: list[tuple[str, str]], cfg, version: str, actors: int, gpus_per_actor: float,
              ray_address: str | None, progress: bool, stats: dict[str, Any]) -> Iterator[tuple[Any, bool, Any]]:
    from annotation_engine.actor import EnginePool
    from unilseg.ray_runtime import ensure_ray

    import ray

    t0 = time.perf_counter()
    missing = unset_variables(cfg)
    if missing:
        raise UniLSegError(f"engine {cfg.name!r} names environment variables that are not set: {', '.join(missing)}")
    ensure_ray(ray_address)
    r = cfg.resources
    gpus = gpus_per_actor if gpus_per_actor > 0 else r.num_gpus
    have = ray.cluster_resources().get("GPU", 0.0)
    if gpus * actors > have:  # the actors would wait for ever
        raise UniLSegError(f"{actors} actor(s) x {gpus} GPU need {gpus * actors} GPUs; the Ray cluster has {have:g}. "
                         "Use fewer actors, or a config with resources.num_gpus: 0 (CPU)")
    config = cfg.to_dict()
    config["device"] = ("cuda" if cfg.device == "cpu" else cfg.device) if gpus > 0 else "cpu"
    pool = EnginePool(config, actors=actors, num_cpus=r.num_cpus, num_gpus=gpus, torch_threads=r.torch_threads,
                      niceness=r.niceness)
    try:
        versions = pool.ready()
        if any(v != version for v in versions):  # e.g. a model file changed under us
            raise RuntimeError(f"actors built engine versions {versions}, the driver computed {version}")
        stats["startup_s"] = round(time.perf_counter() - t0, 3)
        t1 = time.perf_counter()
        bar = tqdm(total=len(todo), desc=f"annotate {cfg.name}", unit="img", disable=not progress)
        for item, ok, result in pool.map(todo, lambda it: read_bytes(it[0]), r.batch_size, r.inflight):
            bar.update(1)
            yield item, ok, result
        bar.close()
        stats["annotate_s"] = round(time.perf_counter() - t1, 3)
        stats["actor_restarts"] = pool.restarts
        stats["actor_peak_rss_mb"] = [round(v, 1) for v in pool.peak_rss_mb()]
    finally:
        pool.shutdown()


def _record(writer: ShardWriter, item: tuple[str, str], ok: bool, result: Any, version: str, source: str,
            counts: dict[str, int]) -> None:
    """Writes one result: a sample, or a quarantine record saying why not."""
    path, sha = item
    if not ok:
        kind, reason = result
        writer.quarantine(path, f"{reason} (engine {version})", kind=kind, sha256=sha, engine_version=version)
        counts["quarantined"] += 1
        return
    if not result["targets"]:
        writer.quarantine(path, f"no targets (engine {version})", kind="no_targets", sha256=sha,
                          engine_version=version)
        counts["quarantined"] += 1
        return
    sample = Sample(key=sample_key(sha, version),
                    image=ImageInfo(id=path, width=result["width"], height=result["height"], sha256=sha, source=source),
                    image_bytes=result["data"], image_ext=result["ext"], targets=result["targets"])
    try:
        writer.write(sample)
    except FormatError as e:
        writer.quarantine(path, f"invalid sample: {e} (engine {version})", kind="engine_error", sha256=sha,
                          engine_version=version)
        counts["quarantined"] += 1
        return
    counts["written"] += 1
