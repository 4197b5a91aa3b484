"""CLI start-up: wall time of `spikeforge --help`, `list` and `train default --set epochs=0` for two source trees.

    python benchmarks/startup.py --before /tmp/old/src --rounds 5    # prints a markdown table

Each round runs every command once per tree, the trees alternating (before, this, this, before, …), so a
shared machine's load changes hit both. `train default --set epochs=0` is the nearest no-op: the recipe is
refused at validation (exit 2) after the command has started. Every run is a fresh process at the default
thread count; the load average is read before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
COMMANDS = (["--help"], ["list"], ["train", "default", "--set", "epochs=0"])


def wall(src: Path, argv: list[str], cwd: str) -> float:
    """Seconds from start to exit of `python -m spikeforge ARGV` with `src` first on the path."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(src)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "spikeforge", *argv], env=env, cwd=cwd, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", type=Path, required=True, help="the other spikeforge src/ tree")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    trees = {"before": args.before.resolve(), "this": SRC}
    times = {(t, i): [] for t in trees for i in range(len(COMMANDS))}
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as cwd:  # no run folder or recipe of the working directory is involved
        for r in range(args.rounds):
            order = list(trees) if r % 2 == 0 else list(reversed(trees))
            for i, argv in enumerate(COMMANDS):
                for tree in order:
                    times[tree, i].append(wall(trees[tree], argv, cwd))
    print(f"load average (1 min) {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after; {os.cpu_count()} logical cores\n")
    print("| command | before: median (range) s | this: median (range) s | this / before |")
    print("| --- | --- | --- | ---: |")
    for i, argv in enumerate(COMMANDS):
        cells = [f"{statistics.median(times[t, i]):.2f} ({min(times[t, i]):.2f}–{max(times[t, i]):.2f})" for t in trees]
        ratio = statistics.median(times['this', i]) / statistics.median(times['before', i])
        print(f"| `spikeforge {' '.join(argv)}` | {cells[0]} | {cells[1]} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
