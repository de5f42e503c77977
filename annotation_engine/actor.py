"""The engine as a Ray Data stage: a callable class that Ray runs in a pool of actors.

``EngineActor`` builds the Engine once per actor and maps blocks of images to result rows;
Ray Data supplies the pool (``map_batches(EngineActor, compute=ActorPoolStrategy(size=n))``),
backpressure, retries of a dead actor's blocks on a fresh actor, and the operator's progress
in the dashboard. The per-image work is ``image_task.annotate_batch`` / ``annotate_one``, the same
in a bare loop, a test, an actor or a child process (img2dataset's habit: the caller decides what
a failure means). A block's images go through the engine together (``Engine.annotate_batch``: one
image-encoder call for several images on a GPU).

Images that were in flight when an actor died are *suspects* (the run's ledger says so):
each is annotated alone in a child process (``image_task.annotate_isolated``). If the child
dies, the image killed it, and it is quarantined with the signal or exit code; the run goes on.
An actor killed from outside never gets the image it was working on quarantined: that image
simply succeeds in its child.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
from typing import Any

import numpy as np
from ray.util.metrics import Counter, Histogram

from annotation_engine.engine import Engine, sample_key
from annotation_engine.image_task import UNREADABLE, annotate_batch, annotate_isolated
from annotation_engine.ledger import SUSPECT
from annotation_engine.ledger_group import as_group
from common.ray_runtime import set_niceness
from shards.format import ImageInfo, Sample

log = logging.getLogger(__name__)


class EngineActor:
    """Builds the Engine once; maps a block of pending images to result rows (Ray Data UDF).

    Args:
        config (dict): EngineConfig as a dict.
        ledger: the run's Ledger actor (crash bookkeeping, progress).
        torch_threads (int): intra-op threads for torch in this process.
        niceness (int | None): OS priority to run at (Ray starts its workers at 15); None keeps it.
    """

    def __init__(self, config: dict[str, Any], ledger: Any, torch_threads: int = 1, niceness: int | None = None):
        set_niceness(niceness)
        self.config, self.ledger = config, as_group(ledger)
        self.engine = Engine(config)
        if "torch" in sys.modules:  # a weight-free engine never imports it (faster actor start)
            sys.modules["torch"].set_num_threads(max(1, int(torch_threads)))
        tags = {"engine": self.engine.config.name}
        self._images = Counter(
            "unilseg_annotate_images", "images through the engine, by outcome", tag_keys=("engine", "outcome")
        )
        self._targets = Counter("unilseg_annotate_targets", "targets written by the engine", tag_keys=("engine",))
        self._seconds = Histogram(
            "unilseg_annotate_image_seconds",
            "engine seconds per image",
            boundaries=[0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
            tag_keys=("engine",),
        )
        self._tags = tags

    def _observe(self, ok: bool, result: Any, seconds: float) -> None:
        self._seconds.observe(seconds, tags=self._tags)
        self._images.inc(tags={**self._tags, "outcome": "annotated" if ok else result[0]})
        if ok:
            self._targets.inc(len(result["targets"]), tags=self._tags)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        rows = list(zip(batch["path"], batch["sha256"], batch["data"], batch["problem"]))
        todo = [i for i, (_, _, _, problem) in enumerate(rows) if not problem]
        # every image is marked begun before any is worked on: if this actor dies, they are all
        # suspects next time, each then run alone, so that only the culprit is quarantined
        status = self.ledger.begin_many([rows[i][1] for i in todo])
        fresh = [i for i, (s, _) in zip(todo, status) if s != SUSPECT]
        t0 = time.perf_counter()
        results = dict(zip(fresh, annotate_batch(self.engine, [bytes(rows[i][2]) for i in fresh])))
        for i in fresh:
            self._observe(*results[i], (time.perf_counter() - t0) / len(fresh))
        for i in todo:
            if i not in results:  # a suspect: alone, in a child process
                t0 = time.perf_counter()
                results[i] = annotate_isolated(self.config, bytes(rows[i][2]))
                self._observe(*results[i], time.perf_counter() - t0)
        out: dict[str, list] = {k: [] for k in RESULT_COLUMNS}
        ended = []
        for i, (path, sha, _, problem) in enumerate(rows):
            ok, result = results.get(i, (False, (UNREADABLE, problem)))
            if ok:
                info = ImageInfo(
                    id=path, width=result["width"], height=result["height"], sha256=sha, source=self.engine.source
                )
                sample = Sample(
                    sample_key(sha, self.engine.version), info, result["data"], result["ext"], result["targets"]
                )
                _add(
                    out,
                    path,
                    sha,
                    "sample",
                    key=sample.key,
                    image=sample.image_bytes,
                    ext=sample.image_ext,
                    meta=sample.metadata_json(),
                )
            else:
                _add(out, path, sha, result[0], reason=result[1])
            ended.append((sha or path, "annotated" if ok else result[0]))
        self.ledger.end_many(ended)
        return out

    def version(self) -> str:
        return self.engine.version

    def peak_rss_mb(self) -> float:
        """Peak resident memory of this process in MB."""
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    def pid(self) -> int:
        return os.getpid()


# one row per image: a sample (kind "sample", key, image bytes, ext, KEY.json bytes) or a
# quarantine record (kind and reason)
RESULT_COLUMNS = ("path", "sha256", "kind", "reason", "key", "image", "ext", "meta")


def _add(
    out: dict[str, list],
    path: str,
    sha: str,
    kind: str,
    *,
    reason: str = "",
    key: str = "",
    image: bytes = b"",
    ext: str = "",
    meta: bytes = b"",
) -> None:
    for k, v in zip(RESULT_COLUMNS, (path, sha, kind, reason, key, image, ext, meta)):
        out[k].append(v)
