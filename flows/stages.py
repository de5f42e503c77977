"""Stage done-markers: a stopped run started again skips the stages it already finished.

A marker RUN/stages/<stage>.json holds a fingerprint of the stage's inputs and its outputs.
A stage is skipped when the marker's fingerprint matches and every output it lists still
exists; otherwise it runs again. RUN and the outputs may be local paths or fsspec URLs
(shards.storage: the marker appears complete or not at all). A marker holds the inputs'
hash, output locations and the stage's result (paths, counts, metrics): never storage
options, which are passed beside the inputs and not fingerprinted (the library calls it makes resume on their own:
the shard writer skips written keys, training resumes from its latest checkpoint).

Why not Prefect's task caching (prefect 3.8, checked): a cache policy computes its key from
the task's inputs before the task runs, and a hit returns the persisted return value with
no look at the world; the outputs a stage leaves (datasets, checkpoints, reports) are only
known from its result, after the key is fixed. A deleted checkpoint would still be a hit,
and the next stage would fail on a missing file. Caching also needs result persistence
configured per deployment. These ~50 lines check the outputs on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.errors import UniLSegError
from shards import storage
from shards.manifest import write_json_atomic


def fingerprint(inputs: Any) -> str:
    """sha256 of the JSON form of a stage's inputs (sorted keys, str() for paths)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _marker(run_dir: str | os.PathLike, stage: str) -> str:
    return storage.join(run_dir, "stages", f"{stage}.json")


def _live_marker(run_dir: str | os.PathLike, stage: str) -> dict[str, Any] | None:
    """A stage's marker while every output it lists exists, else None."""
    path = _marker(run_dir, stage)
    if not storage.exists(path):
        return None
    doc = json.loads(storage.read_bytes(path))
    return doc if all(storage.exists(storage.like(run_dir, p)) for p in doc.get("outputs", [])) else None


def finished(run_dir: str | os.PathLike, stage: str, inputs: Any) -> dict[str, Any] | None:
    """The recorded result of a finished stage with the same inputs, else None."""
    doc = _live_marker(run_dir, stage)
    return doc["result"] if doc is not None and doc.get("fingerprint") == fingerprint(inputs) else None


def recorded(run_dir: str | os.PathLike, stage: str) -> dict[str, Any] | None:
    """The result a stage last recorded, whatever its inputs were, while its outputs exist; else None."""
    doc = _live_marker(run_dir, stage)
    return None if doc is None else doc["result"]


def mark_finished(
    run_dir: str | os.PathLike,
    stage: str,
    inputs: Any,
    result: Any,
    outputs: list[str | Path],
) -> None:
    """Records that a stage finished; `outputs` are locations whose loss invalidates the marker."""
    path = _marker(run_dir, stage)
    storage.makedirs(storage.parent(path))
    write_json_atomic(
        path,
        {"fingerprint": fingerprint(inputs), "outputs": [str(p) for p in outputs], "result": storage.urls_only(result)},
    )


def run_stage(
    run_dir: str | os.PathLike,
    stage: str,
    inputs: Any,
    fn: Callable[[], Any],
    outputs: Callable[[Any], list[str | Path]],
    log: Callable[[str], None] = print,
) -> Any:
    """Runs `fn` unless the stage already finished with these inputs; returns its result.

    Locations (shards.storage.Location) in the inputs, outputs and result are recorded as
    their URLs: their options are in no fingerprint and no marker. The outputs recorded in a
    marker are checked with the options of `run_dir`."""
    done = finished(run_dir, stage, inputs)
    if done is not None:
        log(f"stage {stage}: already finished with the same inputs, skipped")
        return done
    result = fn()
    mark_finished(run_dir, stage, inputs, result, outputs(result))
    return result


def retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """A Prefect task's ``retry_condition_fn``: bad data or settings (a UniLSegError, such as a
    damaged shard or a missing source) fail the same way again, so they are not retried; any
    other failure (a lost cluster connection, a network share that hiccups) is."""
    try:
        state.result()
    except UniLSegError:
        return False
    except Exception:  # noqa: BLE001 - everything else is worth the configured retries
        return True
    return True
