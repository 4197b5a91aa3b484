"""`spikeforge report RUN_DIR`: regenerate a run's plots and print its summary table."""

from __future__ import annotations

import argparse
from pathlib import Path

from spikeforge.train import runfolder
from spikeforge.train.report import summary_table, write_plots


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="regenerate a run folder's plots and print its summary")
    p.add_argument("run_dir", type=Path, help="a run folder (runs/NAME-TIMESTAMP)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    metrics = runfolder.read_metrics(args.run_dir)
    files = write_plots(args.run_dir)
    print(summary_table(metrics))
    print("plots: " + ", ".join(str(f) for f in files))
    return 0
