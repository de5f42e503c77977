"""Orchestration overhead: annotate-and-train through Prefect (flow, subflows, tasks,
artifacts, stage markers, a temporary Prefect server) vs the same library calls made
directly in one process. Ray is used the same way in both (the library runs the engine in
Ray actors and trains with Ray Train), so the ratio isolates what the flows add; the cost
of Ray actors vs an in-process loop is measured by bench/bench_annotate.py.

    .venv/bin/python bench/bench_flows.py [--synth 300] [--steps 40] [--reps 1]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from flows.config import AnnotateStage, EvaluateStage, LabeledSet, PipelineConfig, TrainStage  # noqa: E402


def config(root: Path, synth: int, steps: int) -> PipelineConfig:
    return PipelineConfig(
        run_name="bench",
        data_root=str(root / "data"),
        runs_root=str(root / "runs"),
        annotate=AnnotateStage(images=str(root / "photos"), name="auto"),
        labeled=[
            LabeledSet(
                name="synth", format="synth-shapes", src=str(root / "src"), splits=["train", "val"], synth_images=synth
            )
        ],
        train=TrainStage(steps=steps, batch_size=8),
        evaluate=EvaluateStage(split="val", limit=100),
    )


def direct(cfg: PipelineConfig) -> None:
    """The demo's stages as plain library calls, in the flow's order."""
    from annotation_engine.driver import annotate_images
    from shards.converters.convert import convert
    from shards.synth import generate_shapes
    from unilseg.eval.evaluate import evaluate
    from unilseg.train import run_training
    from unilseg.train_config import TrainConfig

    a, s, t = cfg.annotate, cfg.labeled[0], cfg.train
    annotate_images(a.images, str(cfg.dataset_dir(a.name)), progress=False, **a.settings())
    generate_shapes(s.src, images=s.synth_images)
    for split in s.splits:
        convert("refcoco", s.src, str(cfg.dataset_dir(s.name)), split, progress=False)
    data = [(str(cfg.dataset_dir(a.name) / "train"), 1.0), (str(cfg.dataset_dir(s.name) / "train"), 1.0)]
    r = run_training(TrainConfig(data=data, out=str(cfg.run_dir / "train"), **t.settings()))
    evaluate(
        str(cfg.dataset_dir(s.name)),
        str(cfg.run_dir / "eval" / s.name),
        checkpoint=str(r["checkpoint"]),
        progress=False,
        **cfg.evaluate.settings(),
    )


def via_flow(cfg: PipelineConfig) -> None:
    from flows.pipeline import annotate_and_train

    annotate_and_train(config=cfg)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--synth", type=int, default=300)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--reps", type=int, default=1)
    args = ap.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    from common.ray_runtime import ensure_ray
    from shards.sample_photos import export_sample_photos

    ensure_ray()  # both variants share one Ray: its start-up is not counted in either
    times: dict[str, list[float]] = {"direct": [], "flow": []}
    with prefect_test_harness(server_startup_timeout=120):
        for rep in range(args.reps):
            order = [("direct", direct), ("flow", via_flow)]
            for name, fn in order if rep % 2 == 0 else order[::-1]:
                root = Path(tempfile.mkdtemp(prefix=f"bench-flows-{name}-"))
                export_sample_photos(root / "photos", names=("astronaut", "coffee", "chelsea", "rocket"))
                cfg = config(root, args.synth, args.steps)
                t0 = time.perf_counter()
                fn(cfg)
                times[name].append(time.perf_counter() - t0)
                print(f"{name}: {times[name][-1]:.1f} s", flush=True)
                shutil.rmtree(root, ignore_errors=True)
    d, f = min(times["direct"]), min(times["flow"])
    print(
        f"\ndirect library calls: {d:.1f} s   via Prefect flows: {f:.1f} s   "
        f"overhead: {(f - d) / d * 100:+.1f}% (best of {args.reps})"
    )


if __name__ == "__main__":
    main()
