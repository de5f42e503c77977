"""shards/integrity.py and every command on a damaged split: `shards verify|stats|preview`, `eval`
and `train` each exit non-zero, the last four with one line naming what is wrong, and none
writes a file (DAMAGE in damage_fixtures.py builds each kind of damage)."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner
from damage_fixtures import DAMAGE, damage_last_shard
from eval_fixtures import write_split

from cli import main
from common.errors import ShardError
from shards.integrity import check_split, guarded, worker_message
from shards.reader import ShardReader

# damage the metadata check finds (before any shard is read) ...
METADATA = ("manifest deleted", "counts disagree", "truncated shard", "missing shard")
# ... and what only reading the shards finds
READ = ("checksum mismatch", "symlink member", "absolute member name", "member name with ..", "slash in the key")


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    split = tmp_path_factory.mktemp("valid") / "ds" / "val"
    write_split(split)  # 3 samples in 2 shards
    return split


def _damaged(valid, tmp_path, kind):
    split = tmp_path / kind.replace(" ", "_").replace(".", "dot") / "val"
    shutil.copytree(valid, split)
    what = DAMAGE[kind](split)
    return split, what


def _snapshot(root):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_valid_split_passes(valid):
    info = check_split(valid)
    assert info["counts"]["samples"] == 3
    assert len(list(guarded(ShardReader(valid).samples(), valid))) == 3


@pytest.mark.parametrize("kind", METADATA)
def test_metadata_damage_is_found_without_reading_shards(valid, tmp_path, kind):
    split, what = _damaged(valid, tmp_path, kind)
    with pytest.raises(ShardError, match=what.replace(".", r"\.")):
        check_split(split)


@pytest.mark.parametrize("kind", READ)
def test_reading_a_damaged_shard_raises_one_shard_error(valid, tmp_path, kind):
    split, _ = _damaged(valid, tmp_path, kind)
    check_split(split)  # the metadata is consistent: only reading finds these
    with pytest.raises(ShardError) as info:
        list(guarded(ShardReader(split).samples(), split))
    assert "\n" not in str(info.value) and str(split) in str(info.value)


def test_worker_message_recovers_the_one_line():
    msg = "shard-000001.tar: sha256 abc does not match dataset.json (def)"
    wrapped = ShardError(
        f"Caught ShardError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
        f'last):\n  File "x.py", line 1, in <module>\ncommon.errors.ShardError: {msg}\n'
    )
    assert worker_message(wrapped) == msg
    assert worker_message(ShardError(msg)) == msg


@pytest.mark.parametrize("kind", METADATA + READ)
def test_every_command_refuses_a_damaged_split(valid, tmp_path, kind, monkeypatch):
    import unilseg.train

    def no_ray(*a, **k):
        raise AssertionError("metadata damage must be found before Ray starts")

    split, what = _damaged(valid, tmp_path, kind)
    before = _snapshot(split.parent)
    (tmp_path / "preds").mkdir()
    runner = CliRunner()
    res = runner.invoke(main, ["shards", "verify", str(split)])
    assert res.exit_code == 1 and "FAIL" in res.output and "error:" in res.output, res.output
    assert "Traceback" not in res.output
    commands = {
        "stats": ["shards", "stats", str(split)],
        "preview": ["shards", "preview", str(split), "--out", str(tmp_path / "out" / "sheet.png")],
        "eval": [
            "eval",
            "--predictions",
            str(tmp_path / "preds"),
            "--data",
            str(split),
            "--out",
            str(tmp_path / "out" / "report"),
            "--no-progress",
        ],
    }
    if kind in METADATA:  # what only reading finds is trained on by Ray workers: test_train_stops_at_once...
        monkeypatch.setattr(unilseg.train, "ensure_ray", no_ray)
        commands["train"] = [
            "train",
            "--data",
            str(split),
            "--out",
            str(tmp_path / "out" / "run"),
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--preset",
            "unilseg-tiny",
        ]
    for name, args in commands.items():
        res = runner.invoke(main, args)
        lines = res.output.strip().splitlines()
        assert res.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), (name, res.output)
        assert str(split) in lines[0], (name, lines[0])
        if kind in METADATA:
            assert what in lines[0], (name, lines[0])
    assert _snapshot(split.parent) == before  # nothing written into the dataset ...
    assert not (tmp_path / "out").exists()  # ... nor any output


@pytest.mark.parametrize("kind", READ)
def test_stats_metadata_only_trusts_the_shards(valid, tmp_path, kind):
    """--metadata-only skips the read that finds member damage: the counts come out (exit 0)."""
    split, _ = _damaged(valid, tmp_path, kind)
    res = CliRunner().invoke(main, ["shards", "stats", "--metadata-only", str(split)])
    assert res.exit_code == 0 and "targets" in res.output, res.output


@pytest.mark.parametrize("kind", READ)
def test_preview_checks_the_whole_split_as_stats_does(valid, tmp_path, kind):
    """A sheet of one target reads only the first shard; damage in the last one still fails the
    command in one line, and no sheet is written (--metadata-only trusts the shards, as stats)."""
    split = tmp_path / "last" / "val"
    shutil.copytree(valid, split)
    damage_last_shard(split, kind)
    runner = CliRunner()
    res = runner.invoke(main, ["shards", "preview", str(split), "--limit", "1", "--out", str(tmp_path / "a.png")])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), res.output
    assert str(split) in lines[0] and not (tmp_path / "a.png").exists()
    assert runner.invoke(main, ["shards", "stats", str(split)]).exit_code == 1
    res = runner.invoke(
        main, ["shards", "preview", str(split), "--limit", "1", "--metadata-only", "--out", str(tmp_path / "b.png")]
    )
    assert res.exit_code == 0 and (tmp_path / "b.png").exists(), res.output  # the sheet never reached the damage
