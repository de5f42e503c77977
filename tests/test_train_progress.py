"""unilseg/train_progress.py: one console line per event, each once; the loss curve PNG."""

from __future__ import annotations

import json
import time

import numpy as np
from PIL import Image

from unilseg.train_progress import draw_loss_curve, follow, format_event, loss_history, skipped_text


def _report(step, loss, checkpoint=False):
    return {
        "event": "report",
        "step": step,
        "steps": 10,
        "lr": 1e-4,
        "samples_per_s": 3.0,
        "loss": loss,
        "bce": loss / 2,
        "dice": loss / 3,
        "checkpoint": checkpoint,
    }


def test_lines_of_events():
    assert (
        format_event({"event": "start", "step": 0, "from": "scratch", "world_size": 2, "target": 10})
        == "starting at step 0 from random weights on 2 worker(s), target 10"
    )
    assert format_event({"event": "start", "step": 4, "from": "latest", "world_size": 2}).startswith(
        "resuming at step 4 from latest.pt"
    )
    assert (
        format_event(_report(2, 3.0, checkpoint=True))
        == "step 2/10  loss 3.0000 (bce 1.5000, dice 1.0000)  lr 1.00e-04  3.0 samples/s  [checkpoint]"
    )
    assert (
        format_event({"event": "warning", "rank": 1, "message": "skipping k target 0"})
        == "warning (rank 1): skipping k target 0"
    )
    assert format_event({"event": "something else"}) is None


def test_skipped_targets_show_in_step_lines_once_there_are_some_and_always_in_the_summary():
    clean = {**_report(4, 1.0), "targets_read": 40, "targets_skipped": 0}
    assert format_event(clean) == format_event(_report(4, 1.0))
    assert (
        format_event({**clean, "targets_skipped": 2, "checkpoint": True})
        == "step 4/10  loss 1.0000 (bce 0.5000, dice 0.3333)  lr 1.00e-04  3.0 samples/s  "
        "skipped 2 of 40 targets (broken)  [checkpoint]"
    )
    assert skipped_text(clean, "; ", always=True) == "; skipped 0 of 40 targets (broken)"
    assert skipped_text({"loss": 1.0}, "; ", always=True) == ""  # a run from before the counts


def test_follow_echoes_each_appended_event_once(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(_report(1, 9.0)) + "\n")  # an earlier run's line: not shown again
    lines = []
    with follow(path, lines.append, interval=0.05):
        with open(path, "a") as f:
            f.write(json.dumps(_report(2, 2.0)) + "\n")
            for _ in range(3):  # the same warning every epoch: shown once
                f.write(json.dumps({"event": "warning", "rank": 0, "message": "bad image"}) + "\n")
            f.write('{"event": "report", "st')  # a line being written: read once complete
            f.flush()
            time.sleep(0.3)
            f.write('ep": 3, "loss": 1.0, "bce": 0.5, "dice": 0.3, "lr": 0.1, "samples_per_s": 1.0}\n')
    assert [l.split("  ")[0] for l in lines] == ["step 2/10", "warning (rank 0): bad image", "step 3"]


def test_loss_curve_keeps_the_latest_value_of_a_repeated_step(tmp_path):
    events = [_report(2, 3.0), _report(4, 2.5), _report(4, 2.0), _report(6, 1.0), {"event": "start"}]
    h = loss_history(events)
    assert h["step"].tolist() == [2, 4, 6] and h["loss"].tolist() == [3.0, 2.0, 1.0]
    png = draw_loss_curve(events, tmp_path / "loss.png", size=(320, 200))
    img = np.asarray(Image.open(png))
    assert img.shape == (200, 320, 3)
    assert ((img[..., 0] > 150) & (img[..., 1] < 80)).sum() > 50  # the red loss line is drawn
    assert draw_loss_curve([{"event": "start"}], tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_echo_runs_in_the_callers_context(tmp_path):
    """A Prefect run logger finds its flow run through context variables: the helper thread has them."""
    import contextvars

    var = contextvars.ContextVar("run", default=None)
    var.set("run-42")
    seen = []
    path = tmp_path / "metrics.jsonl"
    with follow(path, lambda line: seen.append(var.get()), interval=0.05):
        path.write_text(json.dumps(_report(2, 1.0)) + "\n")
        time.sleep(0.4)  # read by the helper thread, not by the final drain
    assert seen == ["run-42"]
