"""Annotation runs that stop early: the engine actor killed from outside, the driver killed
then the run repeated, the run's ledger killed, a run stopped before any write, a rerun left
with only unreadable files."""

import json
import os
import signal
import time
from pathlib import Path

import pytest
import ray
import yaml
from click.testing import CliRunner
from driver_fixtures import ENGINE, many_photos, one_line_error, quarantine_records, split_keys, write_photos
from engine_fixtures import kill_annotation_driver

from annotation_engine.driver import annotate_images
from cli import main


def _slow(seconds: float) -> dict:
    """ENGINE with every image taking ``seconds`` (crash_generator:Slow): a run a test can interfere with."""
    return {**ENGINE, "generator": {"name": "crash_generator:Slow", "params": {"n_segments": 80, "seconds": seconds}}}


def _engine_actor_pids() -> list[int]:
    """Pids of live engine actors of this process's Ray (its descendants: other test processes,
    e.g. pytest-xdist's other worker, run their own), from the process table (Ray titles an
    actor's process after its class, "ray::MapWorker(MapBatches(EngineActor))..."; the state
    API would need a dashboard, which a private Ray lacks)."""
    import psutil

    pids = []
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            cmd, status = proc.cmdline(), proc.status()
        except psutil.Error:
            continue
        if cmd and cmd[0].startswith("ray::") and "EngineActor" in cmd[0] and status != psutil.STATUS_ZOMBIE:
            pids.append(proc.pid)
    return pids


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_external_kills_of_the_actor_blame_no_image(ray_cluster, tmp_path):
    """Four quick kills of the only engine actor from outside: every image is still written once,
    none is quarantined, and the split is complete. Each image takes 0.5 s, so the run outlasts
    four actor lives even on a fast machine (24 plain images once finished after two kills)."""
    import threading

    images = tmp_path / "images"
    many_photos(images, 24, side=128)
    kills: list[int] = []
    seen = set(_engine_actor_pids())  # an earlier test's actor may still be exiting: not ours

    def killer():
        deadline = time.time() + 300
        while len(kills) < 4 and time.time() < deadline:
            pids = [p for p in _engine_actor_pids() if p not in seen]
            if pids:
                time.sleep(1.0)
                seen.add(pids[0])
                try:
                    os.kill(pids[0], signal.SIGKILL)
                except ProcessLookupError:  # it exited on its own meanwhile: not a kill
                    continue
                kills.append(pids[0])
            time.sleep(0.2)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    res = annotate_images(str(images), str(tmp_path / "auto"), engine=_slow(0.5), actors=1, progress=False)
    thread.join()
    assert len(kills) == 4, (kills, sorted(seen))
    assert quarantine_records(tmp_path / "auto" / "train") == [] and res["status"] == "complete"
    keys = split_keys(tmp_path / "auto" / "train")
    assert len(keys) == 24 and set(keys.values()) == {1}


@pytest.mark.slow
def test_killed_run_then_rerun_finishes_the_job(ray_cluster, tmp_path):
    images = tmp_path / "images"
    n = 24
    many_photos(images, n, side=128)
    out = tmp_path / "auto"
    # 0.15 s an image: the run is still going when the kill comes, even on a fast machine where
    # the first write task publishes eight shards in one burst
    cfg = {**_slow(0.15), "resources": {"num_cpus": 1, "batch_size": 1}}
    kill_annotation_driver(
        f"{str(images)!r}, {str(out)!r}, engine={cfg!r}, actors=1, max_count=1, "
        f"ray_address={ray_cluster!r}, progress=False",
        str(out / "train"),
    )
    split = out / "train"
    partial = len(list(split.glob("shard-*.tar")))
    assert 2 <= partial < n
    assert not (split / "dataset.json").exists()  # nothing committed: readers see no split yet
    res = annotate_images(str(images), str(out), engine=cfg, actors=1, max_count=1, progress=False)
    assert res["skipped"] >= partial and res["written"] == n - res["skipped"] and res["status"] == "complete"
    keys = split_keys(split)
    assert len(keys) == n and set(keys.values()) == {1}


def _kill_the_ledger_once(split: Path, shards: int, seen: set[str], kills: list[int]) -> None:
    """SIGKILLs the process of the run's ledger actor (the named actor not in ``seen``) once
    ``split`` holds ``shards`` finished shards; records the pid in ``kills``."""
    deadline = time.time() + 300
    while time.time() < deadline:
        names = [
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith("unilseg-ledger-") and a["name"] not in seen
        ]
        if names and len(list(split.glob("shard-*.tar"))) >= shards:
            ledger = ray.get_actor(names[0], namespace="unilseg")
            os.kill(ray.get(ledger.__ray_call__.remote(lambda self: os.getpid())), signal.SIGKILL)
            kills.append(names[0])
            return
        time.sleep(0.1)


@pytest.mark.slow
def test_a_killed_ledger_stops_the_run_in_one_line(ray_cluster, tmp_path):
    """kill -9 of the run's ledger mid-run: the command says in one line that it stopped early
    (it once ended in a traceback of the ledger's death, raised while saving the source index),
    the split is marked incomplete, and the next run finishes it with every image once."""
    import threading

    images = tmp_path / "images"
    n = 12
    many_photos(images, n)
    split = tmp_path / "auto" / "train"
    config = tmp_path / "engine.yaml"
    config.write_text(yaml.safe_dump(_slow(0.3)))  # 12 images x 0.3 s: the run outlasts the kill
    seen = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
    kills: list[str] = []
    killer = threading.Thread(target=_kill_the_ledger_once, args=(split, 2, seen, kills), daemon=True)
    killer.start()
    res = CliRunner().invoke(
        main,
        [
            "annotate",
            str(images),
            "--out",
            str(tmp_path / "auto"),
            "--engine",
            str(config),
            "--max-count",
            "1",
            "--no-progress",
        ],
    )
    killer.join()
    assert kills, "the ledger was not killed while the run was in progress"
    line = one_line_error(res)
    assert "stopped early" in line and "ledger actor died" in line and "marked incomplete" in line, line
    assert json.loads((split / "dataset.json").read_text())["status"] == "incomplete"
    again = annotate_images(
        str(images), str(tmp_path / "auto"), engine=_slow(0.3), actors=1, max_count=1, progress=False
    )
    assert again["status"] == "complete"
    keys = split_keys(split)
    assert len(keys) == n and set(keys.values()) == {1}


def test_a_run_stopped_before_any_write_says_so_and_writes_nothing(ray_cluster, tmp_path, monkeypatch):
    """The ledger dies before the first image reaches it: one line, and no split (the commit of
    an incomplete split once failed on the folder no writer had made, with a traceback)."""
    import annotation_engine.driver as driver

    start = driver.start_ledger

    def dead_on_arrival(*args, **kwargs):
        ledger = start(*args, **kwargs)
        os.kill(ray.get(ledger.__ray_call__.remote(lambda self: os.getpid())), signal.SIGKILL)
        return ledger

    monkeypatch.setattr(driver, "start_ledger", dead_on_arrival)
    images = write_photos(tmp_path / "images", ["coffee"])
    res = CliRunner().invoke(main, ["annotate", str(images[0]), "--out", str(tmp_path / "auto"), "--no-progress"])
    line = one_line_error(res)
    assert "ledger actor died" in line and "nothing was written" in line, line
    assert not (tmp_path / "auto").exists()


def test_a_rerun_left_with_only_unreadable_files(ray_cluster, tmp_path):
    """Files that cannot be read are quarantined again by every run (they have no content to
    mark done). A rerun with nothing else left once failed (KeyError: 'first_begin'); it now
    writes nothing, says so, and exits 0."""
    images = tmp_path / "images"
    write_photos(images, ["coffee"])
    os.symlink(tmp_path / "gone.png", images / "dangling.png")
    out = tmp_path / "auto"
    first = annotate_images(str(images), str(out), engine=ENGINE, actors=1, progress=False)
    assert (first["written"], first["quarantined"]) == (1, 1)
    config = tmp_path / "engine.yaml"
    config.write_text(yaml.safe_dump(ENGINE))
    res = CliRunner().invoke(
        main, ["annotate", str(images), "--out", str(out), "--engine", str(config), "--no-progress"]
    )
    assert res.exit_code == 0, (res.output, res.exception)
    assert "0 written, 1 already done, 1 quarantined" in res.output
    q = quarantine_records(out / "train")
    assert [Path(r["input"]).name for r in q] == ["dangling.png"] and q[0]["kind"] == "unreadable"
    assert not list((out / "train").glob(".lock*"))
