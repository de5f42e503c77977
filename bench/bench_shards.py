"""Shard writer/reader throughput vs plain webdataset, and memory as the dataset grows.

    .venv/bin/python bench/bench_shards.py [--samples 1000] [--repeat 3]

Write: our ShardWriter vs webdataset.TarWriter(mtime=0) writing the same records, both
starting from Sample objects (both encode KEY.json) into 250-sample shards; the run stops
unless both wrote byte-identical shards. What the baseline does not do: validate samples
(texts, task, RLE totals and areas, sizes, key), skip duplicate keys, hash the shards,
write manifest parts, manifest.parquet and dataset.json, fsync, rename from a temp name.
Read: our ShardReader (raw records, streaming sha256 check) vs webdataset.WebDataset
over the same shards, both without image decoding, and both with JSON parsing + PIL
decoding. Both use webdataset's grouping by key; ours expands the tars with its own
block reader (shards/reader.py _TarMembers) where webdataset uses tarfile's stream mode. Each pair runs interleaved in one process; the ratio
is ours / baseline throughput (>= 0.8 is the target). Memory: peak RSS of a child
process writing 1k vs 10k samples (it imports the writer only, not webdataset/torch).
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shards.format import ImageInfo, Sample, Target  # noqa: E402
from shards.images import sha256_bytes  # noqa: E402
from shards.keys import make_key  # noqa: E402
from shards.rle import mask_to_rle  # noqa: E402
from shards.writer import ShardWriter  # noqa: E402


def make_samples(n: int, size: int = 256) -> list[Sample]:
    """n samples of ~50 KB JPEG (noise is incompressible) with 3 targets each."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(np.roll(base, i, axis=1)).save(buf, format="JPEG", quality=90)
        data = buf.getvalue()
        targets = []
        for j in range(3):
            m = np.zeros((size, size), bool)
            m[j * 40: j * 40 + 60 + i % 50, 10: 120] = True
            targets.append(Target([f"region {j} of image {i}"], mask_to_rle(m), "auto", "instance", "bench",
                                  scores={"predicted_iou": 0.9}))
        out.append(Sample(make_key("bench", f"img{i}.jpg"), ImageInfo(str(i), size, size, sha256_bytes(data),
                                                                      "bench"), data, "jpg", targets))
    return out


def write_ours(samples, d: Path) -> float:
    t = time.perf_counter()
    with ShardWriter(d, max_count=250) as w:
        for s in samples:
            w.write(s)
    return time.perf_counter() - t


def write_plain(samples, d: Path) -> float:
    import webdataset as wds

    d.mkdir(parents=True)
    t = time.perf_counter()
    for k in range(0, len(samples), 250):
        # mtime=0 as ours: a float time.time() would add a PAX header to every member
        with wds.TarWriter(str(d / f"shard-{k // 250:06d}.tar"), mtime=0) as w:
            for s in samples[k: k + 250]:
                w.write(s.to_wds())
    return time.perf_counter() - t


def same_bytes(ours: Path, plain: Path) -> None:
    """Both writers must have written the same shards, byte for byte (like is compared with like)."""
    names = sorted(p.name for p in plain.glob("shard-*.tar"))
    if names != sorted(p.name for p in ours.glob("shard-*.tar")) or any(
            (ours / n).read_bytes() != (plain / n).read_bytes() for n in names):
        raise SystemExit("our shards differ from webdataset.TarWriter's: the comparison would be unfair")


def read_ours(d: Path, decode: bool) -> float:
    from shards.reader import ShardReader  # here: it imports webdataset (and torch), the writer does not

    t = time.perf_counter()
    n = 0
    if decode:
        for _ in ShardReader(d).samples(decode_images=True):
            n += 1
    else:
        for _ in ShardReader(d).raw():
            n += 1
    return time.perf_counter() - t


def read_plain(d: Path, decode: bool) -> float:
    import webdataset as wds

    urls = sorted(str(p) for p in d.glob("shard-*.tar"))
    t = time.perf_counter()
    ds = wds.WebDataset(urls, shardshuffle=False, empty_check=False)
    if decode:
        ds = ds.decode("rgb8")
    for _ in ds:
        pass
    return time.perf_counter() - t


def peak_rss_writing(n: int) -> float:
    """Peak RSS (MB) of a child process that generates and writes n samples one by one.

    Read from /proc/self/status (VmHWM, this process image only): ``ru_maxrss`` of a child
    also counts the RSS the parent had when it forked (here ~800 MB of torch and samples),
    which hid any growth.
    """
    code = f"""
import re, resource, sys, tempfile
sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'bench')!r})
from bench_shards import make_samples
from shards.writer import ShardWriter
tmpl = make_samples(50)
with tempfile.TemporaryDirectory() as d, ShardWriter(d, max_count=250) as w:
    for i in range({n}):
        s = tmpl[i % 50]
        s.key = f"k{{i}}"
        w.write(s)
try:
    print(int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) / 1024)
except OSError:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    samples = make_samples(args.samples)
    mb = sum(len(s.image_bytes) for s in samples) / 1e6
    res: dict[str, list[float]] = {k: [] for k in ("w_ours", "w_plain", "r_ours", "r_plain", "rd_ours", "rd_plain")}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            ours, plain = Path(tmp) / "ours", Path(tmp) / "plain"
            res["w_plain"].append(write_plain(samples, plain))
            res["w_ours"].append(write_ours(samples, ours))
            same_bytes(ours, plain)
            res["r_plain"].append(read_plain(plain, False))
            res["r_ours"].append(read_ours(ours, False))
            res["rd_plain"].append(read_plain(plain, True))
            res["rd_ours"].append(read_ours(ours, True))
    best = {k: min(v) for k, v in res.items()}
    print(f"{args.samples} samples, {mb:.1f} MB of JPEG, best of {args.repeat}")
    print("| stage | ours (samples/s) | webdataset (samples/s) | ratio |")
    print("|---|---|---|---|")
    for name, a, b in [("write", "w_ours", "w_plain"), ("read raw", "r_ours", "r_plain"),
                       ("read + decode", "rd_ours", "rd_plain")]:
        ours, plain = args.samples / best[a], args.samples / best[b]
        print(f"| {name} | {ours:,.0f} | {plain:,.0f} | {ours / plain:.2f}x |")
    r1, r10 = peak_rss_writing(1000), peak_rss_writing(10000)
    print(f"peak RSS writing 1k samples: {r1:.0f} MB; 10k samples: {r10:.0f} MB (ratio {r10 / r1:.2f})")


if __name__ == "__main__":
    main()
