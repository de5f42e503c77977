"""annotation_engine/review/reviewed.py (and shards.commit.replace_split): decisions -> the
reviewed split; provenance, the rejected list, a second import that changes no byte, a new
review that replaces the version, kill -9 at any step leaving OUT as before or complete."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from shard_fixtures import make_sample

from annotation_engine.review.reviewed import REJECTED, write_reviewed
from common.errors import UniLSegError
from shards.reader import ShardReader
from shards.rle import mask_to_rle
from shards.verify import verify_split
from shards.writer import ShardWriter

AT = "2026-12-06T01:00:00Z"


@pytest.fixture
def split(tmp_path):
    d = tmp_path / "data" / "set" / "train"
    with ShardWriter(d, max_count=3) as w:
        for i in range(7):
            w.write(make_sample(i))
    return d


def _decision(key, target, verdict, **kw):
    return {
        "key": key,
        "target": target,
        "verdict": verdict,
        "by": "ann@x.org",
        "at": AT,
        "task": 1,
        "project": "p",
        **kw,
    }


def _content(split) -> list:
    return [
        (s.key, json.dumps(s.image.__dict__), [t.__dict__ for t in s.targets])
        for s in ShardReader(split).samples(False)
    ]


def _bytes_of(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _keys(split):
    return [s.key for s in ShardReader(split).samples(False)]


def test_accepted_corrected_rejected_and_untouched_targets(split, tmp_path):
    keys = _keys(split)
    new_mask = np.zeros((24, 32), bool)
    new_mask[2:5, 3:9] = True
    decisions = [
        _decision(keys[0], 0, "accept"),
        _decision(keys[1], 0, "accept", mask=dict(mask_to_rle(new_mask))),
        _decision(keys[2], 0, "accept", text="the thing on the left"),
        _decision(keys[3], 0, "reject"),
        _decision(keys[4], 0, "reject"),
        _decision(keys[4], 1, "reject"),  # nothing left of that sample: it is left out
    ]
    src = {s.key: s.targets for s in ShardReader(split).samples(False)}
    res = write_reviewed(split, tmp_path / "out", decisions, project="p")
    assert res["written"] and (res["accept"], res["reject"], res["samples"]) == (3, 3, 6)
    assert verify_split(tmp_path / "out").ok
    out = {s.key: s.targets for s in ShardReader(tmp_path / "out").samples(False)}
    review = {"by": "ann@x.org", "at": AT, "project": "p", "task": 1}
    accepted = out[keys[0]][0]
    assert accepted.provenance == {**src[keys[0]][0].provenance, "review": {**review, "verdict": "accept", "target": 0}}
    assert (accepted.mask, accepted.texts, accepted.scores) == (
        src[keys[0]][0].mask,
        src[keys[0]][0].texts,
        src[keys[0]][0].scores,
    )
    fixed = out[keys[1]][0]
    assert (fixed.mask_array() == new_mask).all() and fixed.scores == {}
    assert fixed.provenance["by"] == "human" and fixed.provenance["review"]["changed"] == ["mask"]
    assert fixed.provenance["engine"]["mask"] == src[keys[1]][0].mask
    assert fixed.provenance["engine"]["scores"] == src[keys[1]][0].scores
    text = out[keys[2]][0]
    assert text.texts == ["the thing on the left"] and text.provenance["engine"]["texts"] == src[keys[2]][0].texts
    assert "mask" not in text.provenance["engine"]  # the mask stands
    assert len(out[keys[3]]) == 1 and out[keys[3]][0] == src[keys[3]][1]  # the other target moved up
    assert keys[4] not in out
    assert all(out[k] == src[k] for k in keys[5:])
    rejected = [json.loads(line) for line in (tmp_path / "out" / REJECTED).read_text().splitlines()]
    assert [(r["key"], r["target"], r["by"], r["at"]) for r in rejected] == [
        (keys[3], 0, "ann@x.org", AT),
        (keys[4], 0, "ann@x.org", AT),
        (keys[4], 1, "ann@x.org", AT),
    ]


def test_same_decisions_change_no_byte_new_ones_replace_the_version(split, tmp_path):
    keys, out = _keys(split), tmp_path / "out"
    before = _bytes_of(split)
    first = [_decision(keys[0], 0, "reject")]
    write_reviewed(split, out, first)
    snapshot = _bytes_of(out)
    assert not write_reviewed(split, out, first)["written"] and _bytes_of(out) == snapshot
    second = first + [_decision(keys[1], 0, "accept", text="a new text")]
    assert write_reviewed(split, out, second)["written"]
    rep = verify_split(out)
    assert rep.ok and not rep.warnings, rep.warnings  # the first version's shards and parts are gone
    assert {s.key: s.targets for s in ShardReader(out).samples(False)}[keys[1]][0].texts == ["a new text"]
    assert _bytes_of(split) == before  # the source is never modified


def test_out_may_not_be_the_split(split):
    with pytest.raises(UniLSegError, match="is the split itself"):
        write_reviewed(split, split, [])


_KILLER = """
import os, signal, sys, json
from shards import storage
import shards.storage.files as files
n, calls = int(sys.argv[1]), [0]
def killing(fn):
    def wrapped(*a, **k):
        calls[0] += 1
        if calls[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return fn(*a, **k)
    return wrapped
for name in ("write_bytes", "publish", "remove"):
    setattr(files, name, killing(getattr(files, name)))
    setattr(storage, name, getattr(files, name))
from annotation_engine.review.reviewed import write_reviewed
write_reviewed(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
"""


@pytest.mark.slow  # a Python process per kill point (4, ~3 s each when the machine is idle)
def test_kill_9_at_any_step_leaves_out_as_before_or_complete(split, tmp_path):
    keys, out, pristine = _keys(split), tmp_path / "out", tmp_path / "pristine"
    write_reviewed(split, pristine, [_decision(keys[0], 0, "reject")])
    old = _content(pristine)
    new = [_decision(keys[1], 0, "reject"), _decision(keys[2], 0, "accept", text="new")]
    write_reviewed(split, tmp_path / "expected", new)
    complete = _content(tmp_path / "expected")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    seen = []
    # storage calls of this import: 1 a manifest part, 2 its shard, 3 dataset.json marked incomplete,
    # 4 manifest.parquet, 5-6 rejected.jsonl and review.json, 7 dataset.json, 8- the old version removed
    for n in (2, 4, 7, 9):
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(pristine, out)
        p = subprocess.run([sys.executable, "-c", _KILLER, str(n), str(split), str(out), json.dumps(new)], env=env)
        assert p.returncode == -signal.SIGKILL
        assert verify_split(out).ok and _content(out) in (old, complete)  # one version or the other, never a mix
        seen.append("old" if _content(out) == old else "new")
        write_reviewed(split, out, new)  # the next import finishes the job
        rep = verify_split(out)
        assert rep.ok and not rep.warnings and _content(out) == complete, rep.warnings
    assert seen == ["old", "old", "old", "new"]
