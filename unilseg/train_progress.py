"""What a person sees of a training run: one console line per logged step, and the loss curve.

The workers write their events to RUN/metrics.jsonl (rank 0's reports and (re)starts, any
rank's warnings; unilseg.train_worker). A report carries the targets every rank's data stream
read and skipped as broken since the workers (re)started; a step line shows them once one was
skipped. The driver follows that file while Ray Train runs
(``follow``) and hands each new event, as one line, to a callback: the command line echoes
it, a Prefect flow logs it. Ray's own worker output is not forwarded (common.ray_runtime),
so each line appears once, whatever the number of workers. ``draw_loss_curve`` renders the
reports as RUN/loss.png (PIL only: no plotting library needed). RUN may be a URL: the file is
then re-read at each poll (it holds a line per logged step) and the curve is published there.
"""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from shards import storage

Echo = Callable[[str], None]
LOSS_PNG = "loss.png"
_SOURCES = {"ray": "Ray Train's checkpoint", "latest": "latest.pt", "init": "--init", "scratch": "random weights"}


def format_event(e: dict[str, Any]) -> str | None:
    """One console line for a metrics.jsonl event (None: nothing to show)."""
    kind = e.get("event")
    if kind == "start":
        what = "starting" if e.get("from") in ("scratch", "init") else "resuming"
        target = f", target {e['target']}" if "target" in e else ""
        return (
            f"{what} at step {e['step']} from {_SOURCES.get(e.get('from'), e.get('from'))} on "
            f"{e.get('world_size', '?')} worker(s){target}"
        )
    if kind == "report":
        total = f"/{e['steps']}" if "steps" in e else ""
        return (
            f"step {e['step']}{total}  loss {e['loss']:.4f} (bce {e['bce']:.4f}, dice {e['dice']:.4f})  "
            f"lr {e['lr']:.2e}  {e['samples_per_s']:.1f} samples/s"
            + skipped_text(e, "  ")
            + ("  [checkpoint]" if e.get("checkpoint") else "")
        )
    if kind == "warning":
        return f"warning (rank {e.get('rank', '?')}): {e.get('message')}"
    if kind == "out_of_time":
        return f"time budget {e.get('time_limit_s', 0):.0f} s used: stopped at step {e.get('step')}"
    return None


def skipped_text(metrics: dict[str, Any], prefix: str = "", always: bool = False) -> str:
    """ "<prefix>skipped N of M targets (broken)" from a report's counts: in every step line once a
    target was skipped, and (`always`) in the summary; "" when the report has no counts."""
    skipped, read = metrics.get("targets_skipped"), metrics.get("targets_read")
    if skipped is None or read is None or not (skipped or always):
        return ""
    return f"{prefix}skipped {int(skipped)} of {int(read)} targets (broken)"


class _Follower(threading.Thread):
    """Reads lines appended to a file after `offset` and echoes their events (polling)."""

    def __init__(self, path: str, echo: Echo, interval: float):
        super().__init__(name="unilseg-train-progress", daemon=True)
        # the caller's context variables go along: a Prefect run logger finds its run (and its
        # API server) through them, and without them started a server of its own
        self.context = contextvars.copy_context()
        self.path, self.echo, self.interval = path, echo, interval
        self.offset = len(self._read_from(0))
        self.done = threading.Event()
        self.warned: set[str] = set()  # a warning repeated every epoch is shown once

    def _read_from(self, offset: int) -> bytes:
        """The file's bytes after `offset` (b"" while it does not exist)."""
        try:
            if (local := storage.local_path(self.path)) is not None:
                with open(local, "rb") as f:
                    f.seek(offset)
                    return f.read()
            return storage.read_bytes(self.path)[offset:]  # objects: read whole
        except FileNotFoundError:
            return b""

    def drain(self) -> None:
        data = self._read_from(self.offset)
        end = data.rfind(b"\n") + 1  # a line being written is read when it is complete
        self.offset += end
        for line in data[:end].decode("utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
                text = format_event(event)
            except (ValueError, KeyError, TypeError):
                continue
            if event.get("event") == "warning":
                if event.get("message") in self.warned:
                    continue
                self.warned.add(event.get("message"))
            if text is not None:
                self.echo(text)

    def run(self) -> None:
        self.context.run(self._loop)

    def _loop(self) -> None:
        while not self.done.wait(self.interval):
            self.drain()


@contextmanager
def follow(
    metrics: str | Path,
    echo: Echo | None,
    interval: float | None = None,
) -> Iterator[None]:
    """Echoes the events appended to `metrics` while the block runs (and those left at its end).

    Args:
        metrics: RUN/metrics.jsonl, a local path or URL.
        echo: called with each line, from a helper thread running in the caller's context
            (contextvars); None shows nothing.
        interval: seconds between reads (default 0.5 for a local file, 2 for a URL).
    """
    if echo is None:
        yield
        return
    if interval is None:
        interval = 0.5 if storage.is_local(metrics) else 2.0
    follower = _Follower(storage.absolute(metrics), echo, interval)
    follower.start()
    try:
        yield
    finally:
        follower.done.set()
        follower.join()
        follower.drain()


def loss_history(events: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """step, loss, bce, dice of the reports, one per step (a step reported again after a restart
    keeps its latest value), in step order."""
    by_step = {int(e["step"]): e for e in events if e.get("event") == "report"}
    steps = sorted(by_step)
    return {
        "step": np.asarray(steps, np.float64),
        **{k: np.asarray([float(by_step[s][k]) for s in steps]) for k in ("loss", "bce", "dice")},
    }


def draw_loss_curve(
    events: list[dict[str, Any]],
    out: str | Path,
    size: tuple[int, int] = (640, 360),
) -> str | None:
    """Draws loss, bce and dice against the step into a PNG; None (nothing written) without reports.

    Args:
        events: metrics.jsonl records (unilseg.train_worker.read_metrics).
        out: PNG location (a local path or URL; published complete or not at all).
        size: (width, height) in pixels.

    Returns:
        str | None: ``out``, or None when there was nothing to draw.
    """
    h = loss_history(events)
    if not len(h["step"]):
        return None
    w, ht = size
    left, right, top, bottom = 56, 16, 28, 36
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=12)
    x0, x1 = h["step"].min(), max(h["step"].max(), h["step"].min() + 1)
    y1 = float(max(v.max() for k, v in h.items() if k != "step")) * 1.05 or 1.0

    def xy(step: float, value: float) -> tuple[float, float]:
        return (left + (step - x0) / (x1 - x0) * (w - left - right), top + (1 - value / y1) * (ht - top - bottom))

    draw.rectangle([left, top, w - right, ht - bottom], outline=(120, 120, 120))
    for i in range(5):  # y grid with values, x ticks at the ends
        v = y1 * i / 4
        _, y = xy(x0, v)
        draw.line([left, y, w - right, y], fill=(230, 230, 230))
        draw.text((4, y - 7), f"{v:.3g}", fill="black", font=font)
    for step in (x0, x1):
        x, _ = xy(step, 0)
        draw.text((x - 10, ht - bottom + 6), f"{int(step)}", fill="black", font=font)
    draw.text((w // 2 - 14, ht - 18), "step", fill="black", font=font)
    colours = {"loss": (200, 30, 30), "bce": (30, 90, 200), "dice": (40, 150, 60)}
    for i, (key, colour) in enumerate(colours.items()):
        points = [xy(s, v) for s, v in zip(h["step"], h[key])]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        draw.text((left + 8 + 70 * i, 8), key, fill=colour, font=font)
    storage.makedirs(storage.parent(out))
    with storage.staged_output(out) as staged:
        img.save(staged, format="PNG")
    return str(out)
