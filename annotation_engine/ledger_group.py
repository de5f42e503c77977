"""The run's ledger partitions as one object: started together, each call sent where its rows belong.

``start_ledger`` starts ``partitions`` Ledger actors (``annotation_engine.ledger``) on the
driver's node, named ``unilseg-ledger-<run>`` (the first) and ``unilseg-ledger-<run>-<i>``.
``LedgerGroup`` is what the stages hold (it pickles into Ray tasks and actors as a list of actor
handles): claims and the engine's begin/end go to the partition that owns the content, source
index look-ups and new entries to the one that owns the listing partition, writers' counts to
the first; progress is the sum over all of them.

If any partition dies, the run stops cleanly: a stage's call fails, Ray Data fails the run,
the driver names the ledger and commits what the writers finished as an incomplete split. The
next run reads what is done from the split itself (never from a ledger), so nothing is annotated
twice: a restarted partition would have lost its claims (a second copy of an image could slip
through) and its open images (a crash could be pinned on no one), so none is restarted
(``max_restarts=0``). What a dead partition had not saved of the source index is read again
(and hashed) by the next run; the other partitions save theirs.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from annotation_engine.ledger import INDEX_ROWS, Ledger, content_slot, path_slot
from annotation_engine.source_index import DEFAULT_PARTITION

log = logging.getLogger(__name__)
_EARLIEST, _LATEST = ("first_begin", "first_end"), ("last_end",)


def _gather(actors: list, groups: dict[int, list[int]], method: str, payload: dict[int, list]) -> dict[int, Any]:
    refs = {slot: getattr(actors[slot], method).remote(payload[slot]) for slot in groups}
    return dict(zip(refs, ray.get(list(refs.values()))))


class LedgerGroup:
    """The partitions of one run's ledger, routed by content and by listing partition.

    Args:
        actors (list): Ledger actor handles, partition i first... (``slot=(i, len(actors))``).
    """

    def __init__(self, actors: list):
        self.actors = list(actors)

    def __len__(self) -> int:
        return len(self.actors)

    @property
    def __ray_call__(self) -> Any:  # the first partition, as the lone ledger once was (tests kill it so)
        return self.actors[0].__ray_call__

    def _split(self, rows: list, slot_of: Any) -> tuple[dict[int, list[int]], dict[int, list]]:
        where: dict[int, list[int]] = defaultdict(list)
        payload: dict[int, list] = defaultdict(list)
        for i, row in enumerate(rows):
            s = slot_of(row) if len(self.actors) > 1 else 0
            where[s].append(i)
            payload[s].append(row)
        return where, payload

    def _routed(self, rows: list, slot_of: Any, method: str) -> list:
        if not rows:
            return []
        where, payload = self._split(rows, slot_of)
        answers = _gather(self.actors, where, method, payload)
        out: list = [None] * len(rows)
        for slot, idx in where.items():
            for i, answer in zip(idx, answers[slot]):
                out[i] = answer
        return out

    def lookup(self, rows: list[tuple[str, int, str, str]]) -> list[str | None]:
        """(path, size, version, listing partition) -> the sha256 the index knows, or None."""
        n = len(self.actors)
        return self._routed(rows, lambda r: path_slot(r[3] if len(r) > 3 else DEFAULT_PARTITION, n), "lookup")

    def claim(self, rows: list[tuple[str, str, int, str, bool, str]]) -> list[str]:
        """(path, sha256, size, version, was read, listing partition) -> GO, DONE or DUPLICATE;
        what was read goes to the source index of its listing partition."""
        n = len(self.actors)
        if n == 1:
            return self._routed(rows, None, "claim")
        read = [(r[5], r[0], r[2], r[3], r[1]) for r in rows if r[4]]
        refs = []
        if read:
            where, payload = self._split(read, lambda r: path_slot(r[0], n))
            refs = [self.actors[s].remember.remote(payload[s]) for s in where]
        verdicts = self._routed([(*r[:4], False) for r in rows], lambda r: content_slot(r[1], n), "claim")
        ray.get(refs)
        return verdicts

    def begin_many(self, shas: list[str]) -> list[tuple[str, int]]:
        """An engine actor starts on a batch of images: (GO or SUSPECT, deaths so far) for each."""
        n = len(self.actors)
        return self._routed(shas, lambda sha: content_slot(sha, n), "begin_many")

    def end_many(self, rows: list[tuple[str, str]]) -> list:
        """(sha256 or path, outcome) of finished images; returns the calls' ObjectRefs (not waited for)."""
        n = len(self.actors)
        where, payload = self._split(rows, lambda r: content_slot(r[0], n))
        return [self.actors[s].end_many.remote(payload[s]) for s in where]

    def written(self, samples: int, quarantined: int, shards: int) -> Any:
        return self.actors[0].written.remote(samples, quarantined, shards)

    def progress(self) -> dict[str, Any]:
        """The counters summed over the partitions; the engine's earliest first and latest last
        times. Raises RayActorError if a partition died."""
        parts = ray.get([a.progress.remote() for a in self.actors])
        out: dict[str, Any] = {}
        for p in parts:
            for k, v in p.items():
                if k in _EARLIEST:
                    out[k] = min(out.get(k, v), v)
                elif k in _LATEST or k == "seconds":
                    out[k] = max(out.get(k, v), v)
                else:
                    out[k] = out.get(k, 0) + v
        return out

    def save_index(self) -> int:
        """Every living partition saves what it changed of the source index; raises
        RayActorError (after the others saved) if one had died."""
        refs = [a.save_index.remote() for a in self.actors]
        total, dead = 0, None
        for ref in refs:
            try:
                total += ray.get(ref)
            except ray.exceptions.RayActorError as e:
                dead = e
        if dead is not None:
            raise dead
        return total

    def stats(self) -> list[dict[str, Any]]:
        return ray.get([a.stats.remote() for a in self.actors])

    def kill(self) -> None:
        for a in self.actors:
            ray.kill(a)


def as_group(ledger: Any) -> LedgerGroup:
    """A LedgerGroup, or a lone Ledger actor seen as a group of one."""
    return ledger if isinstance(ledger, LedgerGroup) else LedgerGroup([ledger])


def start_ledger(
    split_dir: str, version: str, run_id: str, partitions: int = 1, index_rows: int = INDEX_ROWS
) -> LedgerGroup:
    """The run's ledger partitions as Ray actors on this (the driver's) node, named after the run."""
    node = ray.get_runtime_context().get_node_id()
    actors = []
    for i in range(partitions):
        remote = ray.remote(Ledger).options(
            name=f"unilseg-ledger-{run_id}" + (f"-{i}" if i else ""),
            num_cpus=0,
            max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
        )
        actors.append(remote.remote(split_dir, None, version, (i, partitions), index_rows))
    return LedgerGroup(actors)
