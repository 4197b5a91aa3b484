"""`spikeforge noise accuracy-vs-t RUN...`: test accuracy versus T of trained single-step runs (noise-based training paper).

Train the runs with `spikeforge train` (noise_fmnist: Gaussian noise, noise_fmnist_uniform, noise_fmnist_none); this
converts each by step 2 ("ensemble"), step 3 ("accumulate") or runs it as the plain LIF ("lif") (Figs. 2, 5, 6).
The §3.2 training-time race against direct T-step BPTT is a measurement: benchmarks/noise_timing.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from spikeforge.metrics.noise_accuracy import STEPS, accuracy_vs_t, write_accuracy_report


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("noise", help="noise-based single-step training: accuracy versus T of trained runs")
    noise_sub = parser.add_subparsers(dest="noise_command", required=True, metavar="REPORT")
    p = noise_sub.add_parser("accuracy-vs-t", help="test accuracy versus T of trained single-step runs")
    p.add_argument("runs", nargs="+", type=Path, help="run folders written by `spikeforge train` with method noise_single_step")
    p.add_argument("--out", type=Path, default=Path("runs/noise"), help="output folder (default runs/noise)")
    p.add_argument("--steps", type=int, nargs="+", default=list(STEPS), help="values of T (default 1 2 5 10 20)")
    p.add_argument("--modes", nargs="+", default=["ensemble", "accumulate"], choices=("ensemble", "accumulate", "lif"),
                   help="conversions to report (a run without noise gets lif instead of accumulate)")
    p.add_argument("--alpha", type=float, nargs="+", default=[4.0], help="α values of step 3, eq. (9) (default 4; 2: no residual noise; inf: step 2)")
    p.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N test samples")
    p.add_argument("--batch-size", type=int, default=100, help="evaluation batch size (default 100)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows, notes = accuracy_vs_t(args.runs, args.steps, args.modes, args.alpha, args.test_limit, args.batch_size)
    print(write_accuracy_report(rows, notes, args.steps, args.out, {"runs": [str(r) for r in args.runs]}))
    print(f"wrote {args.out}/accuracy_vs_t.md, .png, .json")
    return 0
