"""Ray Train loop: 2 CPU workers train, checkpoint, survive a lost worker, resume, and a rerun is a no-op."""

import time

import pytest
import torch

from shards.converters.run import convert
from shards.synth import generate_shapes
from unilseg.checkpoint import load_checkpoint, save_checkpoint
from unilseg.model import build_model
from unilseg.train import LATEST, TrainConfig, _restore, lr_at, read_metrics, run_training


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate_shapes(root / "src", images=24, seed=1, size=64)
    convert("refcoco", root / "src", root / "out", "train", max_count=4, progress=False)
    return root / "out"


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    from unilseg.ray_runtime import ensure_ray

    ensure_ray(num_cpus=2)
    yield
    ray.shutdown()


def test_config_validation_and_schedule():
    with pytest.raises(ValueError, match="at least 2 per worker"):
        TrainConfig(data=[("x", 1)], workers=2, batch_size=2)
    with pytest.raises(TypeError, match="unknown"):
        TrainConfig.from_dict({"bogus": 1})
    cfg = TrainConfig(data=[("x", 1)], steps=100, warmup_steps=10, lr=1e-3, min_lr_ratio=0.1)
    assert lr_at(5, cfg) == pytest.approx(5e-4) and lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(100, cfg) == pytest.approx(1e-4) and lr_at(50, cfg) < lr_at(20, cfg)
    assert TrainConfig.from_dict(cfg.__dict__) == cfg
    assert lr_at(20, cfg, time_fraction=1.0) == pytest.approx(1e-4)  # a time budget moves the cosine on


def test_restore_prefers_run_checkpoint_over_init(tmp_path):
    torch.manual_seed(0)
    a, b = build_model("unilseg-tiny"), build_model("unilseg-tiny")
    opt = torch.optim.AdamW(a.parameters())
    save_checkpoint(tmp_path / "init.pt", a, opt, step=9)
    cfg = TrainConfig(data=[("x", 1)], out=str(tmp_path / "run"), init=str(tmp_path / "init.pt"))
    model = build_model("unilseg-tiny")
    assert _restore(cfg, model, torch.optim.AdamW(model.parameters())) [:2] == (0, "init")  # fine-tune: step 0
    torch.testing.assert_close(model.state_dict(), a.state_dict())
    save_checkpoint(tmp_path / "run" / LATEST, b, torch.optim.AdamW(b.parameters()), step=3)
    assert _restore(cfg, model, torch.optim.AdamW(model.parameters())) [:2] == (3, "latest")
    torch.testing.assert_close(model.state_dict(), b.state_dict())
    cfg.init = None
    (tmp_path / "run" / LATEST).unlink()
    assert _restore(cfg, model, torch.optim.AdamW(model.parameters())) [:2] == (0, "scratch")


def test_missing_data_fails_before_ray(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a shard split"):
        run_training(TrainConfig(data=[(tmp_path / "nothing", 1.0)], out=str(tmp_path / "run")))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_workers_survive_lost_worker_resume_and_rerun_noop(synth, ray_cluster, tmp_path):
    run = tmp_path / "run"
    cfg = TrainConfig(data=[(str(synth), 1.0)], out=str(run), workers=2, steps=4, batch_size=4, checkpoint_every=2,
                      log_every=2, fail_at_step=4, num_loader_workers=1, shuffle_buffer=8)
    result = run_training(cfg)
    # rank 1 died before step 4 (once); the group restarted from the step-2 checkpoint and finished
    assert (run / ".injected-failure-step-4").exists()
    starts = [(e["step"], e["from"]) for e in read_metrics(run) if e["event"] == "start"]
    assert all(e["niceness"] == 0 for e in read_metrics(run) if e["event"] == "start")  # Ray's default is 15
    # Ray's checkpoint when its controller had registered the step-2 report before the loss,
    # else RUN/latest.pt (both hold step 2)
    assert starts[0] [:2] == (0, "scratch") and len(starts) == 2 and starts[1] in ((2, "ray"), (2, "latest"))
    assert result["step"] == 4 and result["checkpoint"] == str(run / LATEST) and result["metrics"]["step"] == 4
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000002.pt", "step-000004.pt"]
    loaded = load_checkpoint(run / LATEST)
    assert loaded.step == 4 and loaded.extra["world_size"] == 2 and loaded.config["input_size"] == 128
    assert result["metrics"]["loss"] > 0 and result["metrics"]["samples_per_s"] > 0

    # a rerun at the same step count returns at once, without starting Ray Train
    t0 = time.perf_counter()
    again = run_training(cfg)
    assert time.perf_counter() - t0 < 5 and again["step"] == 4 and again["metrics"]["step"] == 4
    assert len([e for e in read_metrics(run) if e["event"] == "start"]) == 2



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
        state["module." + released + k[len(ours):]] = v
    torch.save({"state_dict": state}, tmp_path / "released.pth")
    cfg = TrainConfig(data=[("x", 1)], out=str(tmp_path / "run"), init=str(tmp_path / "released.pth"))
    model = build_model(plain)
    assert _restore(cfg, model, torch.optim.AdamW(model.parameters())) [:2] == (0, "init")
    torch.testing.assert_close(model.state_dict(), src.state_dict())
    with pytest.raises(ValueError, match="give the preset"):
        run_training(TrainConfig(preset=None, data=[(str(tmp_path), 1)], out=str(tmp_path / "r2"),
                                 init=str(tmp_path / "released.pth")))


def test_finished_by_steps_or_time_budget(tmp_path):
    from unilseg.train import _finished

    model = build_model("unilseg-tiny")
    path = save_checkpoint(tmp_path / "latest.pt", model, step=7,
                           extra={"out_of_time": True, "time_limit_s": 60.0, "train_seconds": 61.0})
    assert _finished(path, TrainConfig(steps=7))
    assert not _finished(path, TrainConfig(steps=8))
    assert _finished(path, TrainConfig(steps=100, time_limit_s=60.0))  # same budget: done
    assert not _finished(path, TrainConfig(steps=100, time_limit_s=120.0))  # a longer budget continues
