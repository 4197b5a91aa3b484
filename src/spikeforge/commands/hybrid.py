"""`spikeforge hybrid RUN...`: the hybrid paper's conversion table (Tables 1–4 format) over finished runs of hybrid recipes.

Train the arms first, e.g. `spikeforge train hybrid_fc2` and `spikeforge train hybrid_fc2_baseline`; each run already
holds its own table (RUN/one_spike_conversion.md). This puts several runs (both arms) side by side.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from spikeforge.metrics.conversion import conversion_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hybrid", help="conversion table of hybrid runs (constrained ANN → one-spike SNN → STDBP), e.g. both arms")
    p.add_argument("runs", nargs="+", type=Path, help="run folders of recipes with a one_spike_conversion stage (e.g. hybrid_fc2, hybrid_fc2_baseline)")
    p.add_argument("--tolerance", type=float, default=0.5, help="epochs to converge: first fine-tuning epoch within this many points of the best (default 0.5)")
    p.add_argument("--out", type=Path, default=None, help="also write the table to OUT/hybrid.md")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    text = conversion_table(args.runs, args.tolerance)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "hybrid.md").write_text(text)
        print(f"wrote {args.out / 'hybrid.md'}")
    return 0
