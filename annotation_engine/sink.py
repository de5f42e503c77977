"""Our shard format as a Ray Data ``Datasink``: parallel writers, one commit at the end.

Each write task is a writer with an identity of its own (``<run id>_<task index>``), so its
shards are ``shard-<run>_<task>-NNNNNN.tar`` and never collide with another task's or another
run's. A task gets at least ``max_count`` rows (``min_rows_per_write``), writes them as one
shard (more if they exceed ``max_bytes``) straight to the split's storage (local or object
storage, through ``shards.writer``), with its manifest part and its quarantine records, and
returns counts only. A retried task has the same index: it rewrites the same shard names, so
a retry never adds a copy. ``on_write_complete`` runs on the driver: ``commit_split`` merges
every writer's parts into ``manifest.parquet`` and writes ``dataset.json`` (the list readers
trust). The same commit adopts what a killed run finished.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ray.data import Datasink
from ray.data.block import Block, BlockAccessor
from ray.data.datasource import WriteResult

from annotation_engine.ledger_group import as_group
from shards import storage
from shards.commit import commit_split, up_to_date
from shards.format import Sample, parse_metadata
from shards.manifest import read_dataset_json
from shards.writer import DEFAULT_MAX_COUNT, ShardWriter


class ShardDatasink(Datasink):
    """Writes the engine stage's rows (samples and quarantine records) into a split.

    Args:
        split_dir (str): the split (local path or URL), as every node sees it.
        run_id (str): this run's identity (letters, digits): part of every writer's identity.
        version (str): the engine version, recorded with every quarantine record.
        ledger: the run's Ledger actor (told what each writer wrote), or None.
        max_count (int): samples per shard.
    """

    def __init__(
        self,
        split_dir: str,
        run_id: str,
        version: str,
        ledger: Any = None,
        max_count: int = DEFAULT_MAX_COUNT,
    ):
        self.split_dir, self.run_id, self.version, self.ledger = split_dir, run_id, version, ledger
        self.max_count = max_count
        self.summary: dict[str, Any] | None = None

    @property
    def min_rows_per_write(self) -> int:
        return self.max_count

    def get_name(self) -> str:
        return "WriteShards"

    def write(self, blocks: Iterable[Block], ctx: Any) -> dict[str, int]:
        writer = ShardWriter(
            self.split_dir,
            self.max_count,
            writer_id=f"{self.run_id}_{ctx.task_idx:05d}",
            commit=False,
            skip_existing=False,
        )
        written = quarantined = 0
        try:
            for block in blocks:
                for row in BlockAccessor.for_block(block).iter_rows(public_row_format=True):
                    if row["kind"] == "sample":
                        info, targets = parse_metadata(json.loads(row["meta"]))
                        written += writer.write(Sample(row["key"], info, row["image"], row["ext"], targets))
                    else:
                        writer.quarantine(
                            row["path"],
                            f"{row['reason']} (engine {self.version})",
                            kind=row["kind"],
                            sha256=row["sha256"] or None,
                            engine_version=self.version,
                        )
                        quarantined += 1
        finally:  # finished samples are kept even when a row fails: nothing valid is lost
            shards = writer.close()["counts"]["shards"]
        if self.ledger is not None:
            as_group(self.ledger).written(written, quarantined, shards)
        return {"written": written, "quarantined": quarantined, "shards": shards}

    def on_write_complete(self, write_result: WriteResult) -> None:
        if not write_result.num_rows and not storage.exists(self.split_dir):
            return  # nothing listed, nothing written: no empty split marked complete
        if up_to_date(self.split_dir):  # nothing new: the manifest is not rewritten
            self.summary = read_dataset_json(self.split_dir)
            return
        self.summary = commit_split(self.split_dir)
