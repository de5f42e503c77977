"""Seconds per image of `unilseg.model.predict` on CPU, paper preset (random weights) and tiny preset.

    .venv/bin/python bench/bench_predict.py [--presets unilseg-swin-b unilseg-tiny] [--repeat 5]
                                            [--image-size 480x640] [--threads N]

predict = letterbox + tokenize + forward + upsample/sigmoid/inverse warp + threshold, batch 1,
eval mode, no grad. One warm-up call per preset is not timed. Wall seconds and process CPU
seconds (all threads) are reported as the median over repeats, with the model's parameter count.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from flows.paths import PROJECT_ROOT  # noqa: E402  (the checkout: where data/ and runs/ go)

ROOT = PROJECT_ROOT

from unilseg.model import build_model, predict  # noqa: E402


def bench(preset: str, image: np.ndarray, repeat: int) -> dict:
    torch.manual_seed(0)
    t = time.perf_counter()
    model = build_model(preset).eval()
    build_s = time.perf_counter() - t
    text = "the man in a red shirt on the left"
    predict(model, image, text)  # warm-up
    wall, cpu = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        mask = predict(model, image, text)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    assert mask.shape == image.shape[:2]
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    return {
        "preset": preset,
        "input": model.config.input_size,
        "params_m": params_m,
        "build_s": build_s,
        "wall_s": statistics.median(wall),
        "cpu_s": statistics.median(cpu),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["unilseg-swin-b", "unilseg-tiny"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--image-size", default="480x640", help="HxW of the test image")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = map(int, args.image_size.split("x"))
    image = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, image {h}x{w}, median of {args.repeat}")
    print(f"{'preset':<16} {'input':>5} {'params (M)':>10} {'build s':>8} {'wall s/img':>10} {'CPU s/img':>10}")
    for preset in args.presets:
        r = bench(preset, image, args.repeat)
        print(
            f"{r['preset']:<16} {r['input']:>5} {r['params_m']:>10.1f} {r['build_s']:>8.2f} {r['wall_s']:>10.3f} "
            f"{r['cpu_s']:>10.3f}"
        )


if __name__ == "__main__":
    main()
