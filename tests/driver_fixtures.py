"""Photos, an engine config and readers shared by the annotation run's tests (test_driver*.py)."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
from engine_fixtures import photo
from PIL import Image

from shards.reader import ShardReader

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera", "coins"]
# the weight-free engine on small images, one CPU per actor (two actors fit on 2 cores)
ENGINE = {
    "base": "weightfree",
    "max_side": 96,
    "generator": {"params": {"n_segments": 80}},
    "resources": {"num_cpus": 1, "batch_size": 1},
}


def write_photos(folder: Path, names=PHOTOS, side: int = 96) -> list[Path]:
    """The named sample photos as PNGs in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in names:
        p = folder / f"{n}.png"
        Image.fromarray(photo(n, side)).save(p)
        paths.append(p)
    return paths


def many_photos(folder: Path, n: int, side: int = 96) -> None:
    """n distinct images: the sample photos shifted sideways."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = PHOTOS[i % len(PHOTOS)]
        Image.fromarray(np.roll(photo(name, side), 5 * (i // len(PHOTOS)), axis=1)).save(folder / f"{name}-{i}.png")


def split_keys(split: Path) -> Counter:
    """How many times each key was written in a split."""
    return Counter(s.key for s in ShardReader(split).samples(decode_images=False))


def quarantine_records(split: Path) -> list[dict]:
    """The split's quarantine.jsonl records."""
    q = split / "quarantine.jsonl"
    return [json.loads(line) for line in q.read_text().splitlines()] if q.exists() else []


def one_line_error(res) -> str:
    """The command's one-line error. Ray's own notice that a worker died ("(raylet) A worker died
    or was killed ...", printed by Ray's error listener in the driver) may come beside it."""
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), (res.output, res.exception)
    assert "Traceback" not in res.output, res.output
    lines = [line for line in res.output.strip().splitlines() if line.strip() and "(raylet)" not in line]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    return lines[0]
