"""The annotation run: a streaming Ray Data pipeline from listed images to committed shards.

    list (tasks, streamed)  ->  read + hash (tasks)  ->  engine (actor pool)  ->  write (tasks)
    ListingDatasource           sources.read_and_hash     actor.EngineActor       sink.ShardDatasink

The driver only plans and commits: it splits the listing into tasks, starts the run's
ledger partitions (``annotation_engine.ledger_group``: ``ledgers`` actors, none holding state
for the whole input) and the pipeline, polls them for progress, and commits the split when the
writers are done. It holds no listing, no done set and no source index; no image bytes or masks
pass through it, and the engine starts on the first images while the rest is still being listed.

Incremental: an image is done for an engine version when its (sha256, version) pair is in
the split's manifest, or in its quarantine as "no targets", "bad input" or "crashed the
engine" for that version. Keys are ``<sha256[:24]>-<version[:12]>``. A run that stops early
(a failure, a kill of the driver) leaves finished shards that the next run adopts, and the
split marked incomplete; the next run skips what is written and finishes it.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import ray
from ray.data import ActorPoolStrategy, DataContext, TaskPoolStrategy
from tqdm import tqdm

from annotation_engine.actor import EngineActor
from annotation_engine.done_set import DONE_KINDS, done_shas  # noqa: F401 (where they once lived)
from annotation_engine.engine_config import engine_version, load_engine_config, unset_variables
from annotation_engine.ledger_group import LedgerGroup, start_ledger
from annotation_engine.run_config import AnnotateConfig
from annotation_engine.sink import ShardDatasink
from annotation_engine.source_index import remove_legacy
from annotation_engine.sources import ListingDatasource, read_and_hash
from common.errors import UniLSegError
from common.ray_runtime import ensure_ray
from shards import storage
from shards.commit import commit_split, up_to_date
from shards.layout import DATASET_JSON, PARTS_DIR
from shards.manifest import read_dataset_json

log = logging.getLogger(__name__)
_POLL_S = 1.0  # seconds between progress polls of the ledger


class RunStopped(UniLSegError):
    """The pipeline stopped before every image was annotated; the split is marked incomplete."""


def _absolute(images: str | list) -> str | list:
    """Local inputs as absolute paths (every node and task resolves them the same way)."""
    if isinstance(images, (list, tuple)):
        return [_absolute(x) for x in images]
    s = os.fspath(images)  # a Location keeps its options
    return storage.normalize(images) if storage.is_url(s) else storage.like(images, os.path.abspath(s))


def _adopt_leftovers(split_dir: str) -> None:
    """Commits what a killed run finished (its keys then count as done), marking the split
    incomplete until this run ends. A complete split with nothing to adopt is left as it is (its
    manifest is not rewritten: a re-run over unchanged inputs writes nothing)."""
    if storage.exists(storage.join(split_dir, DATASET_JSON)) or storage.listdir(storage.join(split_dir, PARTS_DIR)):
        if not up_to_date(split_dir):
            commit_split(split_dir, status="incomplete")


def annotate_images(
    images: str | list[str],
    out: str,
    *,
    progress: bool = True,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Annotates unlabeled images into ``out/split`` with a streaming Ray Data pipeline.

    Args:
        images: folder, glob, fsspec URL, or list of paths/URLs.
        out: dataset directory (``DATA_ROOT/NAME``, local or a URL); shards go to ``out/split``.
        progress: show a progress bar on the console.
        on_progress: called with the ledger's counters about once a second (the flow
            publishes them as a Prefect progress artifact).
        **settings: AnnotateConfig fields (engine, split, actors, gpus_per_actor, max_count,
            ray_address, node_resources); an unknown one fails.

    Returns:
        dict: the split's dataset.json plus this run's ``written``, ``skipped`` (already done or
        second copies), ``quarantined``, ``engine_version`` and ``stats`` (seconds; counters).

    Raises:
        MissingInputError: no such input, or no images under it.
        RunStopped: the pipeline failed part-way (the split stays incomplete; run again).
    """
    run = AnnotateConfig.from_dict(settings)
    t0, started = time.perf_counter(), time.time()
    cfg, version = _engine(run.engine)
    images = _absolute(images)
    listing = ListingDatasource(images)  # a missing input fails here, before Ray starts
    split_dir = storage.join(_absolute(out), run.split)
    ensure_ray(run.ray_address)
    gpus = _gpus_per_actor(run, cfg)

    _adopt_leftovers(split_dir)
    run_id = time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(2)
    ledger = start_ledger(split_dir, version, run_id, run.ledgers)
    ds = _pipeline(listing, ledger, run, cfg, gpus)
    sink = ShardDatasink(split_dir, run_id, version, ledger, run.max_count)
    try:
        counts = _run_pipeline(ds, sink, ledger, split_dir, run, _Progress(ledger, cfg.name, progress, on_progress))
    finally:
        ledger.kill()
    if not counts.get("listed"):
        raise UniLSegError(f"no images under {images}")
    summary = sink.summary or read_dataset_json(split_dir)
    if summary.get("status") == "complete":  # every listing partition has its own index file now
        remove_legacy(split_dir)
    summary.update(
        written=counts.get("written", 0),
        quarantined=counts.get("quarantine_records", 0),
        skipped=counts.get("skipped", 0) + counts.get("duplicates", 0),
        engine_version=version,
        stats=_run_stats(counts, t0, started),
    )
    return summary


def _engine(engine: Any) -> tuple[Any, str]:
    """The engine config (a preset name, a YAML file, a dict) and its engine version; fails when it
    names environment variables that are not set."""
    cfg = load_engine_config(engine)
    missing = unset_variables(cfg)
    if missing:
        raise UniLSegError(f"engine {cfg.name!r} names environment variables that are not set: {', '.join(missing)}")
    return cfg, engine_version(cfg)


def _gpus_per_actor(run: AnnotateConfig, cfg: Any) -> float:
    """GPUs each engine actor asks for; fails when the cluster cannot give every actor its share."""
    gpus = run.gpus_per_actor if run.gpus_per_actor > 0 else cfg.resources.num_gpus
    have = ray.cluster_resources().get("GPU", 0.0)
    if gpus * run.actors > have:  # the actors would wait for ever
        raise UniLSegError(
            f"{run.actors} actor(s) x {gpus} GPU need {gpus * run.actors} GPUs; the Ray cluster has "
            f"{have:g}. Use fewer actors, or a config with resources.num_gpus: 0 (CPU)"
        )
    return gpus


def _pipeline(listing: ListingDatasource, ledger: LedgerGroup, run: AnnotateConfig, cfg: Any, gpus: float) -> Any:
    """The Ray Data dataset up to the engine stage: listing -> read + hash -> engine actors."""
    r = cfg.resources
    config = cfg.to_dict()
    config["device"] = ("cuda" if cfg.device == "cpu" else cfg.device) if gpus > 0 else "cpu"
    niceness = os.getpriority(os.PRIO_PROCESS, 0) if r.niceness is None else r.niceness
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # ours below (one bar); the dashboard shows the operators
    if not log.isEnabledFor(logging.DEBUG):  # Ray Data's execution plan and per-run notices: with --verbose
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    ds = ray.data.read_datasource(listing, num_cpus=0, concurrency=2)
    ds = ds.map_batches(
        read_and_hash,
        fn_kwargs={"ledger": ledger, "reach": listing.reach},
        batch_size=r.batch_size * 8,
        num_cpus=0,
        compute=TaskPoolStrategy(size=max(2, run.actors)),
        batch_format="numpy",
    )
    return ds.map_batches(
        EngineActor,
        fn_constructor_kwargs={
            "config": config,
            "ledger": ledger,
            "torch_threads": r.torch_threads,
            "niceness": niceness,
        },
        compute=ActorPoolStrategy(size=run.actors),
        num_cpus=r.num_cpus,
        num_gpus=gpus,
        batch_size=r.batch_size,
        batch_format="numpy",
        **_pinned(run),
    )


def _pinned(run: AnnotateConfig) -> dict[str, Any]:
    """Ray remote arguments that keep the run's tasks and actors on the nodes it names."""
    return {"resources": dict(run.node_resources)} if run.node_resources else {}


def _run_pipeline(
    ds: Any,
    sink: ShardDatasink,
    ledger: LedgerGroup,
    split_dir: str,
    run: AnnotateConfig,
    progress: _Progress,
) -> dict[str, Any]:
    """Runs the pipeline into the sink while ``progress`` polls the ledger; returns the ledger's
    counters. A failure (Ctrl-C too) marks a started split incomplete and raises RunStopped."""
    with progress as watcher:
        try:
            ds.write_datasink(sink, ray_remote_args={"num_cpus": 0, **_pinned(run)}, concurrency=max(1, run.actors))
            return watcher.poll()  # a ledger that died after the last write fails here
        except (Exception, KeyboardInterrupt) as e:  # Ctrl-C too: say what is kept, in one line
            why = _stop_reason(e, watcher)
            kept = "nothing was written, run again"
            if storage.exists(split_dir):  # a writer started: keep what it finished
                commit_split(split_dir, status="incomplete")
                kept = "the split is marked incomplete, run again to finish it"
            raise RunStopped(
                f"annotation stopped early after {watcher.last.get('annotated', 0)} annotated image(s) ({why}); {kept}"
            ) from e
        finally:
            _save_index(ledger)


def _run_stats(counts: dict[str, Any], t0: float, started: float) -> dict[str, Any]:
    """The run's timings (seconds) and the ledger's counters."""
    stats: dict[str, Any] = {"total_s": round(time.perf_counter() - t0, 3), "counts": counts}
    if {"first_begin", "first_end", "last_end"} <= counts.keys():  # the engine's window: after its actors were built
        stats.update(
            first_image_s=round(counts["first_end"] - started, 3),
            annotate_s=round(counts["last_end"] - counts["first_begin"], 3),
        )
    return stats


def _stop_reason(e: BaseException, watcher: _Progress) -> str:
    """Why the pipeline stopped, in a few words. A dead ledger is named as such: the failure
    Ray Data reports is then some task's, several layers deep."""
    try:
        watcher.poll()
    except ray.exceptions.RayActorError:
        return "the run's ledger actor died"
    except Exception:  # noqa: BLE001 - the counters are only for the message
        pass
    return f"{type(e).__name__}: {str(e).splitlines()[0]}" if str(e).strip() else type(e).__name__


def _save_index(ledger: LedgerGroup) -> None:
    """Saves the source index with what this run hashed. A dead ledger partition took its new
    entries with it: the next run reads those images again (and finds them done), so that is
    no reason to hide why the run stopped."""
    try:
        ledger.save_index()
    except ray.exceptions.RayActorError:
        log.debug("the run's ledger died: its new source index entries are lost", exc_info=True)


class _Progress:
    """Polls the ledger in a thread: a console bar and/or a callback with the counters."""

    def __init__(self, ledger: LedgerGroup, name: str, bar: bool, callback: Callable | None):
        self.ledger, self.callback = ledger, callback
        self.last: dict[str, Any] = {}
        self.bar = tqdm(total=0, desc=f"annotate {name}", unit="img", disable=not bar)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="annotate-progress", daemon=True)

    def poll(self) -> dict[str, Any]:
        self.last = self.ledger.progress()
        done = self.last.get("annotated", 0) + self.last.get("quarantined", 0)
        listed = self.last.get("listed", 0) - self.last.get("skipped", 0) - self.last.get("duplicates", 0)
        self.bar.total = max(listed, done)
        self.bar.n = done
        self.bar.refresh()
        if self.callback is not None:
            self.callback(self.last)
        return self.last

    def _loop(self) -> None:
        while not self._stop.wait(_POLL_S):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - progress must never fail the run
                log.debug("progress poll failed", exc_info=True)

    def __enter__(self) -> _Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.bar.close()
