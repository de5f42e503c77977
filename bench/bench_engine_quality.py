"""Engine configs compared on the synthetic val split with `evaluate_engine` (issue 23).

    .venv/bin/python bench/bench_engine_quality.py [--images 60] [--limit 60] [--actors 1]

Three engines over the same images: `weightfree` (superpixels + attribute names, the demo's),
`sam-tiny` (the tiny randomly initialised SAM of the tests, thresholds 0, the same attribute
captioner) and `sam-tiny` with a CLIP filter (a tiny random CLIP saved locally: its scores are
noise, so the row shows what the filter costs and how the table reads, not what a real CLIP
buys). No weights can be downloaded here: sam-tiny's masks are random-network masks, and the
figures say so. A line per engine, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from annotation_engine.quality.run import evaluate_engine  # noqa: E402
from common.ray_runtime import ensure_ray  # noqa: E402
from shards.converters.convert import convert  # noqa: E402
from shards.synth.generate import generate_shapes  # noqa: E402
from tests.engine_fixtures import save_tiny_clip  # noqa: E402

SAM_TINY = {
    "name": "sam-tiny-attributes",
    "generator": {
        "name": "sam-tiny",
        "params": {
            "points_per_side": 8,
            "points_per_batch": 64,
            "pred_iou_thresh": 0.0,
            "stability_score_thresh": 0.0,
            "stability_score_offset": 1.0,
            "box_nms_thresh": 0.7,
        },
    },
    "captioner": {"name": "attributes"},
    "filters": {"min_area": 0.004, "max_area": 0.9, "nms_iou": 0.85, "rank_by": "predicted_iou", "max_targets": 16},
    "granularity": {"parts": True},
    "resources": {"num_cpus": 1, "num_gpus": 0, "torch_threads": 1, "batch_size": 2, "inflight": 2},
    "max_side": 256,
}


def engines(clip_dir: Path) -> dict[str, object]:
    with_clip = json.loads(json.dumps(SAM_TINY))
    with_clip["name"] = "sam-tiny-attributes-clip"
    # the tiny random CLIP scores these regions between about -0.5 and -0.4: -0.45 keeps about half
    with_clip["filters"].update({"clip_model": str(clip_dir), "clip_min_score": -0.45})
    return {"weightfree": "weightfree", "sam-tiny": SAM_TINY, "sam-tiny + CLIP filter": with_clip}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=60, help="val images wanted (ten times as many are generated)")
    ap.add_argument("--limit", type=int, default=60, help="val images scored")
    ap.add_argument("--actors", type=int, default=1)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-engine-quality-"))
    try:
        generate_shapes(tmp / "src", images=args.images * 10, seed=1)  # the demo's held-out generator seed
        convert("refcoco", tmp / "src", tmp / "data" / "synth", split="val", progress=False)  # refer's layout
        ensure_ray(num_cpus=2)
        rows = {}
        for label, engine in engines(save_tiny_clip(tmp / "clip")).items():
            t = time.perf_counter()
            m = evaluate_engine(
                engine,
                tmp / "data" / "synth",
                tmp / "out" / label.replace(" ", ""),
                split="val",
                limit=args.limit,
                actors=args.actors,
                progress=False,
            )
            seconds = time.perf_counter() - t
            k, ex = m["masks"], m["expressions"]["similarity"]
            best_judge = max(m["scores"].items(), key=lambda kv: kv[1]["spearman"] or -1, default=(None, {}))
            rows[label] = {
                **{x: k[x] for x in ("AR@1", "AR@10", "AR@100", "recall@0.5", "recall@0.75", "precision@0.5")},
                "proposals": k["n_proposals"],
                "truth": k["n_truth"],
                "images": k["n_images"],
                "best_judge": best_judge[0],
                "best_judge_spearman": best_judge[1].get("spearman"),
                "minilm_similarity": ex["mean"],
                "seconds": round(seconds, 1),
                "seconds_per_image": round(seconds / k["n_images"], 3),
            }
            r = rows[label]
            print(
                f"{label:<24} AR@10 {r['AR@10']:.3f} AR@100 {r['AR@100']:.3f} recall@0.5 {r['recall@0.5']:.3f} "
                f"precision@0.5 {r['precision@0.5']:.3f} proposals {r['proposals']} best judge {r['best_judge']} "
                f"({r['best_judge_spearman'] or float('nan'):.3f}) MiniLM {r['minilm_similarity']:.3f} "
                f"{r['seconds']:.1f} s ({r['images']} images)",
                flush=True,
            )
        print(json.dumps(rows))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
