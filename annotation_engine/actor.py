"""The engine in Ray actors: a thin worker and a pool that survives actor deaths.

``EngineWorker`` builds the Engine once and maps batches of encoded images to
``(ok, result)`` pairs (img2dataset's habit: the same callable runs in a loop or in Ray).
``EnginePool`` keeps N such actors busy with a bounded number of batches in flight each;
when an actor dies (``RayActorError``) it starts a replacement and resubmits that actor's
in-flight batches, so every item comes back exactly once. Results go back to the caller,
the only writer.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from shards.images import ImageError, prepare_image

log = logging.getLogger(__name__)


class EngineWorker:
    """Builds the Engine once; annotates encoded images.

    Args:
        config (dict): EngineConfig as a dict.
        torch_threads (int): intra-op threads for torch in this process.
        niceness (int | None): OS priority to run at. Ray starts its workers at niceness 15,
            so on a shared machine the actors lose every core to ordinary processes (a bare
            loop at 0 ran twice as fast); None keeps Ray's.
    """

    def __init__(self, config: dict[str, Any], torch_threads: int = 1, niceness: int | None = None):
        from annotation_engine.engine import Engine

        if niceness is not None and os.getpriority(os.PRIO_PROCESS, 0) != niceness:
            try:
                os.setpriority(os.PRIO_PROCESS, 0, niceness)
            except OSError as e:  # lowering niceness needs CAP_SYS_NICE
                log.warning("cannot set actor niceness to %s (%s); keeping %s", niceness, e,
                            os.getpriority(os.PRIO_PROCESS, 0))

        self.engine = Engine(config)
        if "torch" in sys.modules:  # a weight-free engine never imports it (faster actor start)
            sys.modules["torch"].set_num_threads(max(1, int(torch_threads)))
        self.max_pixels = self.engine.config.max_pixels

    def pid(self) -> int:
        return os.getpid()

    def niceness(self) -> int:
        return os.getpriority(os.PRIO_PROCESS, 0)

    def version(self) -> str:
        return self.engine.version

    def peak_rss_mb(self) -> float:
        """Peak resident memory of this process in MB."""
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    def annotate_one(self, data: bytes) -> tuple[bool, Any]:
        """Encoded image -> (True, result dict) or (False, (kind, reason)).

        The result holds the bytes to store, their extension, the size as seen, the sha256
        of the input and the targets; kinds of failure are ``bad_input`` (ImageError) and
        ``engine_error`` (anything the engine raised, with its type).
        """
        return self.annotate([data])[0]

    def annotate(self, batch: list[bytes]) -> list[tuple[bool, Any]]:
        """A batch of encoded images -> one (ok, result) per image, in order.

        The decodable images go through ``Engine.annotate_batch`` together (one image-encoder
        call for several images on a GPU); if that raises, each is retried alone so that
        only the image at fault is reported as ``engine_error``.
        """
        out: list[tuple[bool, Any] | None] = [None] * len(batch)
        images = []  # (position, prepared image)
        for i, data in enumerate(batch):
            try:
                images.append((i, prepare_image(data, self.max_pixels)))
            except ImageError as e:
                out[i] = (False, ("bad_input", str(e)))
        try:
            targets = self.engine.annotate_batch([img.rgb for _, img in images]) if images else []
        except Exception:  # find the image at fault: one by one
            if len(images) == 1:
                targets = [None]
            else:
                log.warning("a batch of %d images failed; annotating them one by one", len(images))
                targets = [None] * len(images)
        for (i, img), t in zip(images, targets):
            if t is None:
                try:
                    t = self.engine.annotate(img.rgb)
                except Exception as e:  # one image must not stop the run; the reason is quarantined
                    log.exception("engine failed on an image")
                    out[i] = (False, ("engine_error", f"{type(e).__name__}: {e}"))
                    continue
            out[i] = (True, {"data": img.data, "ext": img.ext, "width": img.width, "height": img.height,
                             "sha256": img.sha256, "targets": t})
        return out  # type: ignore[return-value]


@dataclass
class _Job:
    items: list[Any]  # the caller's items
    attempts: int = 0  # actor deaths this job has seen


class ActorDiedTwice(RuntimeError):
    """An item was in flight on two actors that died: it is given up (probably the cause)."""


class EnginePool:
    """N EngineWorker actors kept busy; dead actors replaced, their work resubmitted.

    Args:
        config (dict): EngineConfig as a dict.
        actors (int): number of actors.
        num_cpus (float): CPUs reserved per actor.
        num_gpus (float): GPUs per actor.
        torch_threads (int): OMP/torch threads per actor.
        max_restarts (int): replacements allowed in total before the pool gives up.
        niceness (int | None): OS priority of the actors (see EngineWorker).
    """

    def __init__(self, config: dict[str, Any], actors: int = 1, num_cpus: float = 1.0, num_gpus: float = 0.0,
                 torch_threads: int = 1, max_restarts: int | None = None, niceness: int | None = 0):
        import ray

        if actors < 1:
            raise ValueError(f"actors must be >= 1, got {actors}")
        self._ray = ray
        threads = str(max(1, int(torch_threads)))
        self._options = {"num_cpus": num_cpus, "num_gpus": num_gpus, "runtime_env": {"env_vars": {
            "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
            "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0"),
            "TRANSFORMERS_OFFLINE": os.environ.get("TRANSFORMERS_OFFLINE", "0")}}}
        self._config, self._threads, self._niceness = config, int(threads), niceness
        self._remote = ray.remote(EngineWorker)
        self.actors = [self._new_actor() for _ in range(actors)]
        self.restarts, self.max_restarts = 0, 3 * actors if max_restarts is None else max_restarts

    def _new_actor(self):
        return self._remote.options(**self._options).remote(self._config, self._threads, self._niceness)

    def ready(self) -> list[str]:
        """Waits until every actor has built its engine; returns their engine versions.

        Raises:
            ray.exceptions.RayActorError: an engine failed to build (its error is in the message).
        """
        return self._ray.get([a.version.remote() for a in self.actors])

    def pids(self) -> list[int]:
        return self._ray.get([a.pid.remote() for a in self.actors])

    def peak_rss_mb(self) -> list[float]:
        return self._ray.get([a.peak_rss_mb.remote() for a in self.actors])

    def map(self, items: Iterable[Any], load: Callable[[Any], bytes], batch_size: int = 2,
            inflight: int = 2) -> Iterator[tuple[Any, bool, Any]]:
        """Annotates items in the actors; yields (item, ok, result) as results arrive.

        Args:
            items: the caller's items (e.g. paths); each is loaded only when submitted.
            load: item -> encoded image bytes.
            batch_size: items per actor call.
            inflight: calls queued per actor.

        An item whose actor died is resubmitted; after two deaths it is yielded as
        ``(item, False, ("actor_died", reason))``.
        """
        from ray.exceptions import RayActorError

        items = list(items)
        queue = deque(_Job(items[i:i + batch_size]) for i in range(0, len(items), batch_size))
        running: dict[Any, tuple[int, Any, _Job]] = {}  # ref -> (slot, actor handle, job)

        def fill(slot: int) -> None:
            while queue and sum(1 for s, _, _ in running.values() if s == slot) < inflight:
                job = queue.popleft()
                actor = self.actors[slot]
                running[actor.annotate.remote([load(it) for it in job.items])] = (slot, actor, job)

        for slot in range(len(self.actors)):
            fill(slot)
        while running:
            ready, _ = self._ray.wait(list(running), num_returns=1)
            ref = ready[0]
            slot, actor, job = running.pop(ref)
            try:
                results = self._ray.get(ref)
            except RayActorError as e:
                yield from self._on_death(slot, actor, job, queue, e)
                fill(slot)
                continue
            for item, (ok, result) in zip(job.items, results):
                yield item, ok, result
            fill(slot)

    def _on_death(self, slot: int, actor: Any, job: _Job, queue: deque, err: Exception) -> Iterator:
        if self.actors[slot] is actor:  # first failed call of this actor: replace it once
            self.restarts += 1
            if self.restarts > self.max_restarts:
                raise RuntimeError(f"{self.restarts} actor deaths, more than max_restarts={self.max_restarts}; "
                                   f"last: {err}") from err
            log.warning("actor %d died (%s); starting a replacement and resubmitting its work",
                        slot, type(err).__name__)
            self.actors[slot] = self._new_actor()
        job.attempts += 1
        if job.attempts >= 2 and len(job.items) == 1:
            yield job.items[0], False, ("actor_died", f"the actor died twice while annotating it: {err}")
        elif job.attempts >= 2:  # isolate the culprit: resubmit one by one
            queue.extendleft(_Job([it], 1) for it in reversed(job.items))
        else:
            queue.appendleft(job)

    def shutdown(self) -> None:
        for a in self.actors:
            self._ray.kill(a)
        self.actors = []
