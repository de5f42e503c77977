"""Shard writer/reader throughput vs plain webdataset, and memory as the dataset grows.

    .venv/bin/python bench/bench_shards.py [--samples 1000] [--repeat 3] [--compare REV]

Write: our ShardWriter vs webdataset.TarWriter(mtime=0) writing the same records, both
starting from Sample objects (both encode KEY.json) into 250-sample shards; the run stops
unless both wrote byte-identical shards. What the baseline does not do: validate samples
(texts, task, RLE totals and areas, sizes, key), skip duplicate keys, hash the shards,
write manifest parts, manifest.parquet and dataset.json, fsync, rename from a temp name.
Read: our ShardReader (raw records, streaming sha256 check) vs webdataset.WebDataset
over the same shards, both without image decoding, and both with JSON parsing + PIL
decoding. Both expand the tars with webdataset's tar_file_iterator (tarfile's stream
mode) and group them by key; ours reads through a hashing file object. Each pair runs
interleaved in one process; the ratio is ours / baseline throughput (>= 0.8 is the
target). Memory: peak RSS of a child process writing 1k vs 10k samples (it imports the
writer only, not webdataset/torch), and what importing webdataset would add to it.

--compare REV also runs the writer and reader of git revision REV (shards/writer.py and
shards/reader.py as they were there) in the same loop, so that two versions are compared
in the same run (issue 12: the library-based tar code vs the hand-written one). REV's
modules are imported from a temp dir and must find what they import from shards.* in
this tree.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from flows.paths import PROJECT_ROOT  # noqa: E402  (the checkout: where data/ and runs/ go)

ROOT = PROJECT_ROOT

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
            m[j * 40 : j * 40 + 60 + i % 50, 10:120] = True
            targets.append(
                Target(
                    [f"region {j} of image {i}"],
                    mask_to_rle(m),
                    "auto",
                    "instance",
                    "bench",
                    scores={"predicted_iou": 0.9},
                )
            )
        out.append(
            Sample(
                make_key("bench", f"img{i}.jpg"),
                ImageInfo(str(i), size, size, sha256_bytes(data), "bench"),
                data,
                "jpg",
                targets,
            )
        )
    return out


def load_revision(rev: str, tmp: Path) -> tuple[Any, Any]:
    """(writer module, reader module) of git revision rev, imported from files in tmp."""
    mods = []
    for name in ("writer", "reader"):
        src = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:shards/{name}.py"], capture_output=True, text=True, check=True
        ).stdout
        path = tmp / f"rev_{name}.py"
        path.write_text(src)
        spec = importlib.util.spec_from_file_location(f"rev_{name}", path)
        mod = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look it up
        spec.loader.exec_module(mod)
        mods.append(mod)
    return mods[0], mods[1]


def write_ours(samples, d: Path, writer_cls=ShardWriter) -> float:
    t = time.perf_counter()
    with writer_cls(d, max_count=250) as w:
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
            for s in samples[k : k + 250]:
                w.write(s.to_wds())
    return time.perf_counter() - t


def same_bytes(ours: Path, plain: Path) -> None:
    """Both writers must have written the same shards, byte for byte (like is compared with like)."""
    names = sorted(p.name for p in plain.glob("shard-*.tar"))
    if names != sorted(p.name for p in ours.glob("shard-*.tar")) or any(
        (ours / n).read_bytes() != (plain / n).read_bytes() for n in names
    ):
        raise SystemExit("our shards differ from webdataset.TarWriter's: the comparison would be unfair")


def read_ours(d: Path, decode: bool, reader_cls=None) -> float:
    from shards.reader import ShardReader  # here: it imports webdataset (and torch), the writer does not

    reader_cls = reader_cls or ShardReader
    t = time.perf_counter()
    n = 0
    if decode:
        for _ in reader_cls(d).samples(decode_images=True):
            n += 1
    else:
        for _ in reader_cls(d).raw():
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
sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / "bench")!r})
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


def import_cost(module: str) -> tuple[float, float]:
    """(seconds, peak RSS MB) of a fresh process that imports only `module`."""
    code = (
        f"import re, time; t = time.perf_counter(); import {module}; dt = time.perf_counter() - t; "
        "print(dt, int(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1)) / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    seconds, mb = out.stdout.split()
    return float(seconds), float(mb)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--compare", metavar="REV", help="also time the writer/reader of this git revision")
    args = ap.parse_args()
    samples = make_samples(args.samples)
    mb = sum(len(s.image_bytes) for s in samples) / 1e6
    kinds = ["ours", "plain"] + (["rev"] if args.compare else [])
    res: dict[str, list[float]] = {f"{stage}_{k}": [] for stage in ("w", "r", "rd") for k in kinds}
    with tempfile.TemporaryDirectory() as code_dir:
        rev_w, rev_r = load_revision(args.compare, Path(code_dir)) if args.compare else (None, None)
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                ours, plain, rev = Path(tmp) / "ours", Path(tmp) / "plain", Path(tmp) / "rev"
                res["w_plain"].append(write_plain(samples, plain))
                res["w_ours"].append(write_ours(samples, ours))
                same_bytes(ours, plain)
                if rev_w:
                    res["w_rev"].append(write_ours(samples, rev, rev_w.ShardWriter))
                    same_bytes(rev, plain)
                for stage, decode in (("r", False), ("rd", True)):
                    res[f"{stage}_plain"].append(read_plain(plain, decode))
                    res[f"{stage}_ours"].append(read_ours(ours, decode))
                    if rev_r:
                        res[f"{stage}_rev"].append(read_ours(rev, decode, rev_r.ShardReader))
    best = {k: min(v) for k, v in res.items()}
    print(f"{args.samples} samples, {mb:.1f} MB of JPEG, best of {args.repeat}")
    rev_cols = f" {args.compare} (samples/s) | ours / {args.compare} |" if rev_w else ""
    print(f"| stage | ours (samples/s) | webdataset (samples/s) | ours / webdataset |{rev_cols}")
    print("|---|---|---|---|" + ("---|---|" if rev_w else ""))
    for name, stage in [("write", "w"), ("read raw", "r"), ("read + decode", "rd")]:
        ours, plain = args.samples / best[f"{stage}_ours"], args.samples / best[f"{stage}_plain"]
        row = f"| {name} | {ours:,.0f} | {plain:,.0f} | {ours / plain:.2f}x |"
        if rev_w:
            other = args.samples / best[f"{stage}_rev"]
            row += f" {other:,.0f} | {ours / other:.2f}x |"
        print(row)
    r1, r10 = peak_rss_writing(1000), peak_rss_writing(10000)
    print(f"peak RSS writing 1k samples: {r1:.0f} MB; 10k samples: {r10:.0f} MB (ratio {r10 / r1:.2f})")
    for module in ("shards.writer", "webdataset"):
        seconds, rss = import_cost(module)
        print(f"import {module} in a fresh process: {seconds:.2f} s, peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
