"""`unilseg train`: options reach TrainConfig; a finished run is a no-op; bad input is a clear error."""

import torch
from click.testing import CliRunner

from unilseg.checkpoint import save_checkpoint
from cli import main
from unilseg.model import build_model


def test_finished_run_returns_at_once(tmp_path):
    run = tmp_path / "run"
    save_checkpoint(run / "latest.pt", build_model("unilseg-tiny"), torch.optim.AdamW([torch.zeros(1)]), step=5)
    res = CliRunner().invoke(main, ["train", "--data", f"{tmp_path}/nowhere:2", "--out", str(run), "--steps", "5"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("step 5: ") and str(run / "latest.pt") in res.output


def test_bad_arguments(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--data", "x:-1", "--out", str(tmp_path / "r")])
    assert res.exit_code != 0 and "weight must be > 0" in res.output
    res = runner.invoke(main, ["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")])
    assert res.exit_code != 0 and "not a shard split" in res.output
    res = runner.invoke(main, ["train", "--data", "x", "--out", str(tmp_path / "r"), "--workers", "2",
                               "--batch-size", "3"])
    assert res.exit_code != 0 and "multiple of workers" in res.output
