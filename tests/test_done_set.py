"""What a split holds for an engine version, read one content range at a time: the ranges of
done_set and the ledger's content_slot agree, cover every sha256 once, and keep the version apart."""

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq

from annotation_engine.done_set import done_in_slot, done_shas, slot_bounds
from annotation_engine.ledger import content_slot
from shards.layout import DATASET_JSON, MANIFEST, QUARANTINE
from shards.manifest import MANIFEST_SCHEMA


def _sha(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def _split(tmp_path, shas, version="v1"):
    rows = [{"key": s[:24], "image_sha256": s, "engine_version": version} for s in shas]
    pq.write_table(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), tmp_path / MANIFEST)
    (tmp_path / DATASET_JSON).write_text(json.dumps({"status": "complete", "shards": []}))
    return str(tmp_path)


def test_slots_cover_every_content_once(tmp_path):
    shas = [_sha(i) for i in range(300)]
    split = _split(tmp_path, shas)
    q = {"input": "/x.png", "reason": "no targets", "kind": "no_targets", "sha256": _sha(999), "engine_version": "v1"}
    (tmp_path / QUARANTINE).write_text(json.dumps(q) + "\n")
    for slots in (1, 3, 7):
        got = [set(done_in_slot(split, "v1", i, slots)) for i in range(slots)]
        assert set().union(*got) == set(shas) | {_sha(999)} and sum(map(len, got)) == 301
        for i, part in enumerate(got):
            assert all(content_slot(s, slots) == i for s in part)  # the ledger routes them there
    assert list(done_in_slot(split, "v2", 0, 1)) == [] and list(done_in_slot(split, None)) == []
    assert done_shas(split, "v1") == sorted(set(shas) | {_sha(999)})


def test_slot_bounds():
    assert slot_bounds(0, 1) == ("00000000", None)
    assert slot_bounds(1, 2) == ("80000000", None) and slot_bounds(0, 2) == ("00000000", "80000000")
    assert content_slot("7fffffff" + "0" * 56, 2) == 0 and content_slot("80000000" + "0" * 56, 2) == 1
