"""Shards on object storage: our writer/reader vs webdataset through fsspec, on one moto S3 server.

    .venv/bin/python bench/bench_storage.py [--samples 1000] [--repeat 3]

A moto S3 server (`python -m moto.server`, a separate process on 127.0.0.1) stands in for
S3; AWS_ENDPOINT_URL points at it, as the tests do. The same samples as bench_shards.py
(~50 KB JPEG + 3 targets each), 250 per shard.

Write: our ShardWriter to ``s3://bench/ours/train`` (validation, manifest parts, each shard
staged locally and uploaded when complete, manifest.parquet and dataset.json) vs
webdataset.TarWriter(mtime=0) writing the same shards straight to ``s3://bench/plain/``
through fsspec (registered as webdataset's gopen handler for s3). Both uploads are checked
to hold byte-identical shards. Read: our ShardReader (streamed, sha256 checked) vs
webdataset.WebDataset over the same shards through fsspec, raw records. Each pair runs
interleaved; the ratio is ours / webdataset throughput.
"""

from __future__ import annotations

import argparse
import importlib
import os
import socket
import subprocess
import sys
import time

from flows.paths import PROJECT_ROOT  # noqa: E402  (the checkout: where data/ and runs/ go)

ROOT = PROJECT_ROOT
sys.path.insert(0, str(ROOT / "bench"))  # sibling bench modules

from bench_shards import make_samples  # noqa: E402

from common.processes import die_with_parent  # noqa: E402

BUCKET = "s3://bench"


def start_moto() -> subprocess.Popen:
    """A moto S3 server in its own process (so it does not share this one's GIL)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )  # a killed benchmark takes its server along
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto server did not start")


def fsspec_gopen(url: str, mode: str = "rb", bufsize: int = 8192, **kw):
    import fsspec

    return fsspec.open(url, mode).open()


def write_ours(samples, split: str) -> float:
    from shards.writer import ShardWriter

    t = time.perf_counter()
    with ShardWriter(split, max_count=250) as w:
        for s in samples:
            w.write(s)
    return time.perf_counter() - t


def write_plain(samples, prefix: str) -> float:
    import webdataset as wds

    t = time.perf_counter()
    for k in range(0, len(samples), 250):
        with wds.TarWriter(f"{prefix}/shard-{k // 250:06d}.tar", mtime=0) as w:
            for s in samples[k : k + 250]:
                w.write(s.to_wds())
    return time.perf_counter() - t


def read_ours(split: str) -> float:
    from shards.reader import ShardReader

    t = time.perf_counter()
    n = sum(1 for _ in ShardReader(split).raw())
    assert n > 0
    return time.perf_counter() - t


def read_plain(urls: list[str]) -> float:
    import webdataset as wds

    t = time.perf_counter()
    n = sum(1 for _ in wds.WebDataset(urls, shardshuffle=False, empty_check=False))
    assert n > 0
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import fsspec

    from shards import storage

    samples = make_samples(args.samples)
    mb = sum(len(s.image_bytes) for s in samples) / 1e6
    server = start_moto()
    try:
        # webdataset's own hook for a URL scheme (wds.gopen is the function; its module holds the table)
        importlib.import_module("webdataset.gopen").gopen_schemes["s3"] = fsspec_gopen
        fs = fsspec.filesystem("s3")
        fs.mkdir(BUCKET[len("s3://") :])
        res: dict[str, list[float]] = {k: [] for k in ("w_ours", "w_plain", "r_ours", "r_plain")}
        for i in range(args.repeat):
            ours, plain = f"{BUCKET}/ours{i}/train", f"{BUCKET}/plain{i}"
            res["w_plain"].append(write_plain(samples, plain))
            res["w_ours"].append(write_ours(samples, ours))
            names = [f"shard-{k:06d}.tar" for k in range(-(-args.samples // 250))]
            if any(storage.read_bytes(f"{ours}/{n}") != storage.read_bytes(f"{plain}/{n}") for n in names):
                raise SystemExit("our shards differ from webdataset.TarWriter's: the comparison would be unfair")
            res["r_plain"].append(read_plain([f"{plain}/{n}" for n in names]))
            res["r_ours"].append(read_ours(ours))
    finally:
        server.kill()
    best = {k: min(v) for k, v in res.items()}
    print(f"{args.samples} samples, {mb:.1f} MB of JPEG, moto S3 on 127.0.0.1, best of {args.repeat}")
    print("| stage | ours (samples/s) | webdataset + fsspec (samples/s) | ratio |")
    print("|---|---|---|---|")
    for name, a, b in [("write", "w_ours", "w_plain"), ("read raw", "r_ours", "r_plain")]:
        o, p = args.samples / best[a], args.samples / best[b]
        print(f"| {name} | {o:,.0f} | {p:,.0f} | {o / p:.2f}x |")


if __name__ == "__main__":
    main()
