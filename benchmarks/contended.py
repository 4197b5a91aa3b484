"""Contended scenario: each training workload timed alone and next to one identical competing process.

    python benchmarks/contended.py                        # writes benchmarks/RESULTS-contended.md
    python benchmarks/contended.py --before /tmp/old/src  # also the spikeforge tree at /tmp/old/src, same run
    python benchmarks/contended.py --quick                # small shapes, report printed

Workloads: training steps of benchmark models A and B (benchmarks/bench_models.py) for spikeforge and
every installed peer, and whole `Trainer.fit()` runs of the `default` and `kws_fast` recipes on data
subsets. Every measurement is a fresh process at the default thread count (what a user gets) that runs
one untimed unit first (allocator, compiled kernels, a dataset's feature cache). Alone:
the timed process by itself. Contended: a competitor process running the same workload in a loop is
started first and has finished one unit (step or fit) before the timed process starts. The two
conditions alternate round by round, so slow phases of a shared machine hit both; the ratio
contended / alone of the medians is the slow-down (a fair share of 2 cores between two processes is 2×).
A timed process runs up to 3 units (model steps) and stops once it has timed 60 s; the competitor keeps
running until the timed process has finished.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
PEERS = ("snntorch", "spikingjelly", "norse")
TARGET = 2.5  # issue 11: each of two concurrent trainings at most 2.5× slower than alone
UNIT_BUDGET_S = 60  # a timed process stops after the unit that takes it past this many seconds


def _model_unit(model_name: str, impl: str, quick: bool):
    """One train step of benchmark model `model_name` for `impl` (spikeforge is imported first, as documented)."""
    if impl.startswith("spikeforge"):
        import spikeforge  # noqa: F401  (the thread budget and passive pools, before torch loads)
    sys.path.insert(0, str(HERE))
    import run

    shape = (run.QUICK_SHAPES if quick else run.SHAPES)[model_name]
    model, opt, x, y = run.setup(model_name, impl, shape["steps"], shape["batch"])
    return lambda: run.train_step(model, opt, x, y)


def _recipe_unit(recipe: str, overrides: list[str]):
    """One `Trainer.fit()` of `recipe` with `overrides`, no run folder."""
    from spikeforge.train.config import load_recipe
    from spikeforge.train.trainer import Trainer

    config = load_recipe(recipe, overrides)

    def fit():
        Trainer(config, None, log=lambda _: None, progress_bar=False).fit()

    return fit


def worker(spec: dict) -> None:
    """Run the workload: up to `spec["units"]` timed units (printing their median as one JSON line), or forever as a competitor."""
    if spec["kind"] == "model":
        unit = _model_unit(spec["model"], spec["impl"], spec["quick"])
    else:
        unit = _recipe_unit(spec["recipe"], spec["overrides"])
    unit()  # warm-up: allocator, lazy init, compiled kernels, a dataset's feature cache
    if spec["units"] == 0:  # competitor: after its first unit it says so, then loops until killed
        print("ready", flush=True)
        while True:
            unit()
    times = []
    while len(times) < spec["units"] and sum(times) < UNIT_BUDGET_S:  # at least one unit
        t0 = time.perf_counter()
        unit()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"seconds": statistics.median(times)}), flush=True)


def _spawn(spec: dict, src: Path, competitor: bool) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "NUMBA_NUM_THREADS")}
    env["PYTHONPATH"] = str(src)
    spec = {**spec, "units": 0 if competitor else spec["units"]}
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)], env=env,
                            stdout=subprocess.PIPE, text=True, cwd=HERE.parent)


def measure(spec: dict, src: Path, contended: bool) -> float:
    """Seconds per unit of `spec` (median within the process), alone or next to a competitor."""
    rival = _spawn(spec, src, competitor=True) if contended else None
    try:
        if rival is not None and rival.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the competitor of {spec} failed")
        timed = _spawn(spec, src, competitor=False)
        out, _ = timed.communicate()
        if timed.returncode != 0:
            raise RuntimeError(f"{spec} failed (exit {timed.returncode})")
        return json.loads(out.strip().splitlines()[-1])["seconds"]
    finally:
        if rival is not None:
            rival.kill()
            rival.wait()


def workloads(quick: bool, kws_root: Path, impls: list[str]) -> dict[str, dict]:
    """name → worker spec."""
    units = 2 if quick else 3
    specs = {f"model {m}, {impl}": {"kind": "model", "model": m, "impl": impl, "quick": quick, "units": units}
             for m in ("A", "B") for impl in impls}
    limit = 1500 if quick else 7200  # default: 101 steps of batch 64 and the evaluations
    specs["recipe default"] = {"kind": "recipe", "recipe": "default", "units": 1,
                               "overrides": ["epochs=1", f"dataset.limit={limit}", "checkpoint_every=0"]}
    if kws_root.is_dir():
        specs["recipe kws_fast"] = {"kind": "recipe", "recipe": "kws_fast", "units": 1,
                                    "overrides": ["epochs=1", f"dataset.root={kws_root}", "checkpoint_every=0"]}
    order = ["model B", "model A, spikeforge", "recipe", "model A, norse", "model A, snntorch", "model A"]  # the quick rows first: a slow peer comes last
    return dict(sorted(specs.items(), key=lambda kv: next(i for i, o in enumerate(order) if kv[0].startswith(o))))


def installed_peers() -> list[str]:
    found = []
    for peer in PEERS:
        probe = subprocess.run([sys.executable, "-c", f"import {peer}"], capture_output=True)
        if probe.returncode == 0:
            found.append(peer)
    return found


def report(rows: list[dict], info: dict) -> str:
    lines = ["# Contended scenario: two trainings on the same CPUs", "",
             f"Command: `{info['command']}` ({info['date']}, {info['minutes']:.1f} min in all).", "",
             f"Machine: {info['machine']}. {info['conditions']}", "",
             __doc__.split("\n\n", 2)[2].strip(), "",
             "| workload | tree | alone (s) | contended (s) | slow-down | target ≤ 2.5× |",
             "| --- | --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        ratio = r["contended"] / r["alone"]
        tree = "—" if any(peer in r["workload"] for peer in PEERS) else r["tree"]  # a peer does not load spikeforge
        lines.append(f"| {r['workload']} | {tree} | {r['alone']:.3f} | {r['contended']:.3f} | {ratio:.2f}× | "
                     f"{'met' if ratio <= TARGET else 'missed'} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small shapes, one round, report printed")
    p.add_argument("--rounds", type=int, default=1, help="alone/contended pairs per workload (default 1)")
    p.add_argument("--before", type=Path, default=None, help="another spikeforge src/ tree to measure in the same run")
    p.add_argument("--kws-root", type=Path, default=Path("data/speech_commands"), help="speech data for kws_fast")
    p.add_argument("--only", nargs="+", default=None, help="workload names to run (substring match)")
    p.add_argument("--conditions", default="", help="a sentence on the machine's other load, for the report")
    p.add_argument("--out", type=Path, default=None, help="report path (default benchmarks/RESULTS-contended.md)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    start = time.perf_counter()
    impls = ["spikeforge-fused", *installed_peers()]
    specs = workloads(args.quick, args.kws_root.resolve(), impls)
    if args.only:
        specs = {k: v for k, v in specs.items() if any(o in k for o in args.only)}
    trees = {"this": SRC, **({"before": args.before.resolve()} if args.before else {})}
    rows = []
    for name, spec in specs.items():
        for tree, src in trees.items():
            if tree == "before" and not ("spikeforge" in name or name.startswith("recipe")):
                continue  # the peers do not depend on the spikeforge tree
            alone, contended = [], []
            for _ in range(args.rounds):
                alone.append(measure(spec, src, contended=False))
                contended.append(measure(spec, src, contended=True))
            row = {"workload": name, "tree": tree, "alone": statistics.median(alone), "contended": statistics.median(contended)}
            print(f"{name} [{tree}]: alone {row['alone']:.3f} s, contended {row['contended']:.3f} s "
                  f"({row['contended'] / row['alone']:.2f}×)", file=sys.stderr, flush=True)
            rows.append(row)
            write(rows, args, start)  # after every row: an interrupted run keeps what it measured
    if args.quick and args.out is None:
        print(report(rows, _info(args, start)))
    return 0


def _info(args: argparse.Namespace, start: float) -> dict:
    return {"command": " ".join(["python", "benchmarks/contended.py", *sys.argv[1:]]), "date": datetime.date.today().isoformat(),
            "minutes": (time.perf_counter() - start) / 60, "conditions": args.conditions,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, python {platform.python_version()}"}


def write(rows: list[dict], args: argparse.Namespace, start: float) -> None:
    """The markdown report and its JSON (not in a quick run without --out)."""
    if args.quick and args.out is None:
        return
    out = args.out or HERE / "RESULTS-contended.md"
    info = _info(args, start)
    old = out.read_text() if out.exists() else ""
    kept = old[old.index("\n## "):] if "\n## " in old else ""  # the sections after the table are not this script's
    out.write_text(report(rows, info) + kept)
    out.with_suffix(".json").write_text(json.dumps({"rows": rows, **info}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
