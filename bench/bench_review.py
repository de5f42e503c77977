"""Review export and import per 1,000 targets, against a real Label Studio (issue 24).

    .venv/bin/python bench/bench_review.py [--images 240] [--size 512] [--repeats 2]

A scored synthetic split (~1,000 targets at 512 x 512; tests/review_fixtures.py) and a Label
Studio server started from the venv's migrated template (`make label-studio`). Timed, each
--repeats times into a fresh project / output:

- baseline: reading the split alone (every shard, images not decoded), what both sides must do;
- export: select every target (--lowest N), write the media, encode the brush masks, build and
  add the tasks (Label Studio's import API included), and the brush encoding alone, ours
  against the SDK's ``mask2rle`` on the same masks;
- import: Label Studio's JSON export of the project with one accepting review per task (the
  reviews are made through the API first, not timed), decisions, and the reviewed split written
  (every target accepted: every target's provenance changes, the worst case for writing).

Prints a line per measurement and one JSON line; figures are per 1,000 targets.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from annotation_engine.review.config import ReviewConfig  # noqa: E402
from annotation_engine.review.export import export_for_review, import_reviews  # noqa: E402
from annotation_engine.review.labeling import mask_to_brush, verdict_result  # noqa: E402
from annotation_engine.review.server import from_template  # noqa: E402
from annotation_engine.review.studio import connect  # noqa: E402
from common.processes import free_port  # noqa: E402
from shards.manifest import read_dataset_json  # noqa: E402
from shards.reader import ShardReader  # noqa: E402


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _accept_all(client, project_id: int) -> None:
    for task in client.tasks.list(project=project_id, fields="all", page_size=1000):
        engine = [r for r in task.predictions[0].result]
        client.annotations.create(id=task.id, result=engine + [verdict_result("accept")])


def _one_round(r: int, split, n: int, work: Path, kw: dict, masks: list, results: dict) -> None:
    from label_studio_sdk.converter.brush import mask2rle

    results["read"].append(_timed(lambda: sum(1 for _ in ShardReader(split).samples(False)))[0])
    results["brush_ours"].append(_timed(lambda: [mask_to_brush(m) for m in masks])[0])
    results["brush_sdk"].append(_timed(lambda: [mask2rle(m.astype("uint8") * 255) for m in masks])[0])
    cfg, project = ReviewConfig(by="predicted_iou", lowest=n), f"bench {r}"
    dt, ex = _timed(lambda: export_for_review(split, project, cfg, files_root=str(work / "files"), **kw))
    assert ex["added"] == n, ex
    results["export"].append(dt)
    client, _ = connect(**kw)
    _accept_all(client, ex["project_id"])
    dt, im = _timed(lambda: import_reviews(project, split, work / f"out{r}", **kw))
    assert im["written"] and im["accept"] == n, im
    results["import"].append(dt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=240)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    from review_fixtures import scored_split

    work = Path(tempfile.mkdtemp(prefix="bench-review-"))
    split = scored_split(work / "files" / "data", images=args.images, size=args.size)
    n = read_dataset_json(split)["counts"]["targets"]
    per_k = 1000 / n
    server = from_template(work / "ls", free_port(), work / "files").start()
    results: dict[str, list[float]] = {"read": [], "export": [], "brush_ours": [], "brush_sdk": [], "import": []}
    try:
        server.wait(300)
        kw = {"url": server.url, "api_key": server.token}
        masks = [t.mask_array() for s in ShardReader(split).samples(False) for t in s.targets]
        for r in range(args.repeats):
            _one_round(r, split, n, work, kw, masks, results)
    finally:
        server.stop()
    summary = {k: round(statistics.median(v) * per_k, 2) for k, v in results.items()}
    spread = {k: [round(x * per_k, 2) for x in v] for k, v in results.items()}
    print(
        f"{n} targets on {args.images} images of {args.size} px; seconds per 1,000 targets (median of {args.repeats}):"
    )
    for k in results:
        print(f"  {k:<11} {summary[k]:>7.2f} s   (runs: {spread[k]})")
    print(
        json.dumps({"targets": n, "images": args.images, "size": args.size, "median_per_1000": summary, "runs": spread})
    )


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
