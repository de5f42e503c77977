"""Import times: why the command line and the library import heavy packages only where used.

    .venv/bin/python bench/bench_imports.py [--repeat 5]

Each import runs in a fresh interpreter (`python -c "import X"`), alternating the modules
within each repeat; the baseline is an interpreter that imports nothing (`python -c pass`)
measured in the same repeats. Prints, per module, the median and min-max wall seconds over
the repeats and the median minus the baseline's median (what the import itself costs).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

MODULES = [
    "pass",  # the baseline: interpreter start-up
    "import torch",
    "import ray",
    "import transformers",
    "import webdataset",
    "import open_clip",
    "import unilseg.tokenizers",  # open_clip's tokenizer module alone (unilseg.tokenizers says why)
    "import shards.writer",
    "import cli",  # what `unilseg --help` imports
]


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    times: dict[str, list[float]] = {m: [] for m in MODULES}
    print(f"load before: {load()}", flush=True)
    for r in range(args.repeat):
        order = MODULES if r % 2 == 0 else MODULES[::-1]
        for stmt in order:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", stmt], check=True)
            times[stmt].append(time.perf_counter() - t)
    base = statistics.median(times["pass"])
    print(f"load after: {load()}")
    print("| statement | median s (min-max) | minus interpreter start-up |\n|---|---|---|")
    for stmt, ts in times.items():
        print(
            f"| `{stmt}` | {statistics.median(ts):.2f} ({min(ts):.2f}-{max(ts):.2f}) | "
            f"{statistics.median(ts) - base:+.2f} |"
        )


if __name__ == "__main__":
    main()
