"""The annotation pipeline: throughput against a bare loop, scaling with actors, and what the
streaming pipeline changes at scale (time to the first annotated image, driver memory,
re-runs over unchanged inputs), each a ratio measured in one run.

    .venv/bin/python bench/bench_annotate.py throughput [--images 48] [--repeat 2]
    .venv/bin/python bench/bench_annotate.py scale [--first 20000] [--memory 100000] [--before 3bf0ae4]
    .venv/bin/python bench/bench_annotate.py scale --s3 --first-only   # the images in a moto S3 bucket

throughput: the weight-free engine on scikit-image's photos (distinct copies) at full size:
  - bare: Engine built once, then read + annotate + ShardWriter in a plain loop (1 process).
  - pipeline with 1 and 2 actors (1 CPU each) on a local Ray of 2 CPUs; the engine window is
    the ledger's first begin to last end (after the actors built their engines).
  Targets: 1 actor / bare >= 0.9, 2 actors / 1 actor >= 1.6 (a quiet 2-core machine).
scale: tiny distinct PNGs (32 px; 16 px for memory), the weight-free engine at 32 px:
  - time from start to the first shard (max_count 1: written right after the first image)
    on --first listed images, the driver of revision --before (lists and hashes every image
    in the driver first) vs this one; each in a subprocess, killed once it has the answer;
  - the driver's peak RSS (VmHWM) once --memory images are listed, before vs this one;
  - a full run over the --first images, then a re-run over the unchanged folder: its wall
    time against the first run's, and the number of images read again (target: 0).
The --before driver runs from a temporary `git worktree` of that revision (removed after).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from annotation_engine.driver import annotate_images  # noqa: E402
from annotation_engine.engine import Engine, sample_key  # noqa: E402
from annotation_engine.image_task import annotate_one  # noqa: E402
from flows.paths import PROJECT_ROOT  # noqa: E402
from shards.format import ImageInfo, Sample  # noqa: E402
from shards.images import sha256_bytes  # noqa: E402
from shards.writer import ShardWriter  # noqa: E402

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "immunohistochemistry", "colorwheel"]
TINY_ENGINE = {"base": "weightfree", "max_side": 32, "generator": {"params": {"n_segments": 20}}}


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


# ---- throughput --------------------------------------------------------------------------


def make_photos(folder: Path, n: int) -> list[str]:
    """n distinct JPEGs: the bundled photos, each copy flipped/cropped a little."""
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rgb = getattr(skimage.data, PHOTOS[i % len(PHOTOS)])()
        rgb = np.stack([rgb] * 3, -1) if rgb.ndim == 2 else rgb[..., :3]
        copy = i // len(PHOTOS)
        rgb = rgb[:, ::-1] if copy % 2 else rgb
        rgb = rgb[copy // 2 :]
        Image.fromarray(np.ascontiguousarray(rgb)).save(folder / f"img{i:03d}.jpg", quality=90)
    return sorted(str(p) for p in folder.iterdir())


def bare_loop(paths: list[str], out: Path, engine: str) -> float:
    """The same engine and writer in a plain loop: annotate + write seconds (engine built before)."""
    eng = Engine(engine)
    t0 = time.perf_counter()
    with ShardWriter(out / "train") as writer:
        for p in paths:
            data = Path(p).read_bytes()
            sha = sha256_bytes(data)
            ok, r = annotate_one(eng, data)
            if ok:
                info = ImageInfo(p, r["width"], r["height"], sha, eng.source)
                writer.write(Sample(sample_key(sha, eng.version), info, r["data"], r["ext"], r["targets"]))
            else:
                writer.quarantine(p, r[1], kind=r[0])
    return time.perf_counter() - t0


def throughput(args) -> None:
    from common.ray_runtime import ensure_ray

    ensure_ray(num_cpus=2)
    tmp = Path(tempfile.mkdtemp(prefix="bench_annotate_"))
    paths = make_photos(tmp / "images", args.images)
    n = len(paths)
    res: dict[str, list[float]] = {"bare": [], "p1": [], "p2": [], "p1_wall": [], "p2_wall": []}
    loads = []
    for r in range(args.repeat):
        res["bare"].append(bare_loop(paths, tmp / f"bare{r}", args.engine))
        for actors in (1, 2):
            s = annotate_images(
                paths, str(tmp / f"pipe{actors}-{r}"), engine=args.engine, actors=actors, progress=False
            )
            assert s["written"] + s["quarantined"] == n, s
            res[f"p{actors}"].append(s["stats"]["annotate_s"])
            res[f"p{actors}_wall"].append(s["stats"]["total_s"])
        loads.append(load())
        print(f"repeat {r} (load {loads[-1]}): " + ", ".join(f"{k}={v[-1]:.2f}" for k, v in res.items()), flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"\n{n} images, engine {args.engine}, load {', '.join(loads)} (2 cores)")
    print(f"bare loop:            {n / med['bare']:6.2f} img/s")
    for a in (1, 2):
        print(
            f"pipeline, {a} actor(s): {n / med[f'p{a}']:6.2f} img/s in the engine window "
            f"({n / med[f'p{a}_wall']:.2f} img/s wall incl. Ray Data and actor start)"
        )
    wall = med["bare"] / med["p1_wall"]
    print(f"1 actor / bare loop   = {med['bare'] / med['p1']:.2f}  (target >= 0.9; wall {wall:.2f})")
    wall = med["p1_wall"] / med["p2_wall"]
    print(f"2 actors / 1 actor    = {med['p1'] / med['p2']:.2f}  (target >= 1.6; wall {wall:.2f})")


# ---- scale -------------------------------------------------------------------------------


def make_tiny(folder: Path, n: int, side: int) -> None:
    """n distinct tiny PNGs (a random pattern each), in subfolders of 1000."""
    rng = np.random.default_rng(0)
    for i in range(n):
        d = folder / f"{i // 1000:03d}"
        if i % 1000 == 0:
            d.mkdir(parents=True, exist_ok=True)
        blocks = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(np.kron(blocks, np.ones((side // 4, side // 4, 1), np.uint8))).save(d / f"{i:06d}.png")


_DRIVER = """
import json, sys
images, out, engine, new = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4] == "new"
if new:
    from annotation_engine.driver import annotate_images
    def report(c):
        print(json.dumps({"listed": c.get("listed", 0)}), flush=True)
    annotate_images(images, out, engine=engine, actors=1, max_count=1, progress=False, on_progress=report)
else:
    from annotation_engine.run import annotate_images
    annotate_images(images, out, engine=engine, actors=1, max_count=1, progress=False)
"""


def _vmhwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _to_moto(folder: Path, n: int) -> str:
    """Starts moto's S3 server on 127.0.0.1 (for the rest of this process), uploads the folder."""
    import s3fs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    fs = s3fs.S3FileSystem()
    fs.mkdir("bench")
    t0 = time.perf_counter()
    fs.put(str(folder), "bench/first", recursive=True)
    print(f"{n} images uploaded to the moto S3 in {time.perf_counter() - t0:.0f} s", flush=True)
    return "s3://bench/first"


def _driver(images: Path | str, out: Path, which: str, root: Path, until: str, n: int) -> dict[str, float]:
    """Runs a driver in a subprocess until `until` ("first_shard" or "listed"); returns the seconds
    it took and the driver's peak RSS then."""
    # RAY_ADDRESS=local: each driver starts its own Ray (the old one would join any Ray on the machine)
    env = {**os.environ, "PYTHONPATH": str(root), "RAY_USAGE_STATS_ENABLED": "0", "RAY_ADDRESS": "local"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, str(images), str(out), json.dumps(TINY_ENGINE), which],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{which} driver ended before {until}")
            if until == "first_shard" and any((out / "train").glob("shard-*.tar")):
                break
            if until == "listed":
                line = proc.stdout.readline() if which == "new" else ""
                if which == "new" and line.startswith("{") and json.loads(line)["listed"] >= n:
                    break
                if which == "old" and any((out / "train").glob("shard-*.tar")):  # it lists and hashes first
                    break
            time.sleep(0.02)
        return {"seconds": time.perf_counter() - t0, "peak_mb": _vmhwm_mb(proc.pid)}
    finally:  # the driver and the private Ray it started (same process group; Ray's own fate-sharing too)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def scale(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench_annotate_scale_"))
    old_root = tmp / "before"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(old_root), args.before],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
    )
    try:
        first = tmp / "first"
        make_tiny(first, args.first, 32)
        print(f"{args.first} tiny images written (load {load()})", flush=True)
        source = str(first)
        if args.s3:  # the images in a bucket (moto's S3 server on 127.0.0.1): every read is a GET
            source = _to_moto(first, args.first)
        t_old = _driver(source, tmp / "out-old", "old", old_root, "first_shard", args.first)
        t_new = _driver(source, tmp / "out-new", "new", PROJECT_ROOT, "first_shard", args.first)
        print(
            f"time to the first annotated image, {args.first} listed in {'S3' if args.s3 else 'a local folder'}: "
            f"before {t_old['seconds']:.1f} s, now {t_new['seconds']:.1f} s: "
            f"{t_old['seconds'] / t_new['seconds']:.2f}x sooner (load {load()})",
            flush=True,
        )
        if args.first_only:
            return

        from common.ray_runtime import ensure_ray

        ensure_ray(num_cpus=2)
        s1 = annotate_images(str(first), str(tmp / "full"), engine=TINY_ENGINE, actors=2, progress=False)
        s2 = annotate_images(str(first), str(tmp / "full"), engine=TINY_ENGINE, actors=2, progress=False)
        c1, c2 = s1["stats"]["counts"], s2["stats"]["counts"]
        print(
            f"first run over {args.first}: {s1['stats']['total_s']:.1f} s, {c1.get('read', 0)} images read; "
            f"re-run over the unchanged folder: {s2['stats']['total_s']:.1f} s "
            f"({s2['stats']['total_s'] / s1['stats']['total_s'] * 100:.1f}% of the first), "
            f"{c2.get('read', 0)} images read (load {load()})",
            flush=True,
        )
        import ray

        ray.shutdown()
        shutil.rmtree(first, ignore_errors=True)

        mem = tmp / "memory"
        make_tiny(mem, args.memory, 16)
        print(f"{args.memory} tiny images written (load {load()})", flush=True)
        m_old = _driver(mem, tmp / "mem-old", "old", old_root, "listed", args.memory)
        m_new = _driver(mem, tmp / "mem-new", "new", PROJECT_ROOT, "listed", args.memory)
        print(
            f"driver peak RSS once {args.memory} images are listed: before {m_old['peak_mb']:.0f} MB "
            f"({m_old['seconds']:.0f} s to list and hash), now {m_new['peak_mb']:.0f} MB "
            f"({m_new['seconds']:.0f} s to list): {m_new['peak_mb'] / m_old['peak_mb']:.2f}x (load {load()})",
            flush=True,
        )
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old_root)], cwd=PROJECT_ROOT, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--images", type=int, default=48)
    t.add_argument("--repeat", type=int, default=2)
    t.add_argument("--engine", default="weightfree")
    s = sub.add_parser("scale")
    s.add_argument("--first", type=int, default=20000)
    s.add_argument("--memory", type=int, default=100000)
    s.add_argument("--before", default="3bf0ae4", help="revision whose driver is the baseline")
    s.add_argument("--s3", action="store_true", help="time to the first image with the images in a (moto) S3 bucket")
    s.add_argument("--first-only", action="store_true", help="only the time to the first image")
    args = ap.parse_args()
    throughput(args) if args.what == "throughput" else scale(args)


if __name__ == "__main__":
    main()
