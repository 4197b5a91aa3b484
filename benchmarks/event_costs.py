"""Cost of the event-driven synapses against the dense kernels over the input density: where they break even.

    python benchmarks/event_costs.py                       # prints a markdown table
    python benchmarks/event_costs.py --out benchmarks/EVENT-COSTS.md

Layers: model A's layers 2 and 3 (causal time × frequency conv, 64 → 64 channels, kernel 4 × 3,
dilation (4, 3) and (16, 9), input [T=100, B=32, 64, 40]), model B's hidden layer (linear 256 → 256,
input [T=300, B=64, 256]) and its output layer (narrow: 256 → 11, the same input; dense = its narrow-layer
kernels), on random binary inputs of each density. For each: forward alone and
forward + weight gradient (the input gradient is the same kernel on both paths, so it is left out), dense
(events off) and event-driven (events forced on), process CPU time on one thread, medians of
interleaved rounds. `functional.events.BREAK_EVEN` (per kind, training and inference) is set from
where the event path stops being cheaper.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from spikeforge.functional import events
from spikeforge.layers import SpikingConv

DENSITIES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def _layers():
    """(name, input shape, function of x computing the synaptic current, its weight)."""
    torch.manual_seed(0)
    convs = [SpikingConv(64, 64, 3, spatial_dims=1, time_kernel=4, time_dilation=dt, dilation=df, normalize_threshold=False)
             for dt, df in ((4, 3), (16, 9))]
    weight = (torch.randn(256, 256) * 0.05).requires_grad_()
    narrow = (torch.randn(11, 256) * 0.05).requires_grad_()
    return [*((f"conv, model A layer {i + 2}", (100, 32, 64, 40), conv.current, conv.weight) for i, conv in enumerate(convs)),
            ("linear, model B layer 2", (300, 64, 256), lambda x: events.linear(x, weight), weight),
            ("narrow linear, model B layer 3", (300, 64, 256), lambda x: events.linear(x, narrow), narrow)]


def _cpu_ms(fn) -> float:
    t0 = time.process_time()
    fn()
    return (time.process_time() - t0) * 1e3


def measure(rounds: int, densities=DENSITIES, layers: list[str] | None = None) -> list[dict]:
    """One row per (layer, density): median CPU ms of dense and event forward and forward + weight gradient.

    `layers`: only those whose name starts with one of these prefixes (default: all)."""
    rows = []
    saved = events.MAX_DENSITY, dict(events.BREAK_EVEN)
    events.BREAK_EVEN.update({kind: (1.0, 1.0) for kind in events.BREAK_EVEN})  # events wherever MAX_DENSITY allows
    try:
        for name, shape, current, weight in _layers():
            if layers and not name.startswith(tuple(layers)):
                continue
            for density in densities:
                x = (torch.rand(shape, generator=torch.Generator().manual_seed(1)) < density).float()
                g = torch.randn(current(x).shape)
                times = {k: [] for k in ("dense_fwd", "event_fwd", "dense_train", "event_train")}
                for r in range(rounds + 1):  # round 0 warms up (compilation, allocator)
                    for path in (("dense", "event") if r % 2 else ("event", "dense")):
                        events.MAX_DENSITY = 1.0 if path == "event" else 0.0

                        def forward():
                            with torch.no_grad():
                                current(x)

                        def train():
                            torch.autograd.grad(current(x), weight, g)

                        fwd, tr = _cpu_ms(forward), _cpu_ms(train)
                        if r:
                            times[f"{path}_fwd"].append(fwd)
                            times[f"{path}_train"].append(tr)
                med = {k: statistics.median(v) for k, v in times.items()}
                rows.append({"layer": name, "density": density, **med})
                print(f"{name}, {density:.0%}: {med}", file=sys.stderr, flush=True)
    finally:
        events.MAX_DENSITY = saved[0]
        events.BREAK_EVEN.update(saved[1])
    return rows


def _peer_layout_current(conv: SpikingConv):
    """The synaptic current of `conv` as the floor and the peers compute it: conv2d on the `[B, C, T, F]` layout."""
    reach = (conv.time_kernel - 1) * conv.time_dilation

    def current(x):
        y = F.conv2d(F.pad(x.movedim(0, 2), (0, 0, reach, 0)), conv.weight, None, 1, (0, conv.padding[0]),
                     (conv.time_dilation, conv.dilation[0]))
        return y.movedim(2, 0).contiguous()
    return current


def measure_layouts(rounds: int, density: float = 0.3) -> list[dict]:
    """Dense causal conv of model A's layers 2 and 3 (events off): `[B, C, T, F]` (peers) against spikeforge's channels-last."""
    rows = []
    saved = events.MAX_DENSITY
    events.MAX_DENSITY = 0.0
    try:
        for name, shape, current, weight in _layers()[:2]:
            conv = current.__self__
            x = (torch.rand(shape, generator=torch.Generator().manual_seed(1)) < density).float().requires_grad_()
            g = torch.randn(shape)
            paths = {"peers": _peer_layout_current(conv), "spikeforge": conv.current}
            times = {f"{p}_{k}": [] for p in paths for k in ("fwd", "train")}
            for r in range(rounds + 1):
                for p in (list(paths) if r % 2 else list(paths)[::-1]):
                    fwd = _cpu_ms(lambda: torch.no_grad()(paths[p])(x))
                    tr = _cpu_ms(lambda: torch.autograd.grad(paths[p](x), [x, weight], g))
                    if r:
                        times[f"{p}_fwd"].append(fwd)
                        times[f"{p}_train"].append(tr)
            rows.append({"layer": name, **{k: statistics.median(v) for k, v in times.items()}})
            print(f"{name} layouts: {rows[-1]}", file=sys.stderr, flush=True)
    finally:
        events.MAX_DENSITY = saved
    return rows


def report(rows: list[dict], rounds: int, command: str) -> str:
    """A markdown table with event / dense ratios."""
    lines = ["# Event-driven synapses against the dense kernels, by input density", "",
             f"Command: `{command}`; process CPU time (ms) on 1 thread, medians of {rounds} interleaved rounds; "
             "torch " + torch.__version__ + ". " + (__doc__.split("\n\n")[2].replace("\n", " ")), "",
             "| layer | density | dense forward | event forward | event / dense | dense forward + weight grad | "
             "event forward + weight grad | event / dense |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['density']:.0%} | {r['dense_fwd']:.1f} | {r['event_fwd']:.1f} | "
                     f"{r['event_fwd'] / r['dense_fwd']:.2f} | {r['dense_train']:.1f} | {r['event_train']:.1f} | "
                     f"{r['event_train'] / r['dense_train']:.2f} |")
    return "\n".join(lines) + "\n"


def layout_report(rows: list[dict]) -> str:
    """A markdown table of the dense conv's two layouts."""
    lines = ["", "## Dense causal conv: the peers' layout against channels-last", "",
             "Events off; `[B, C, T, F]` = `F.pad` + `conv2d` as the floor and the peers run it; channels-last = "
             "`SpikingConv`'s dense path; training = forward + input and weight gradients; the same CPU-time medians.", "",
             "| layer | [B, C, T, F] forward | channels-last forward | ratio | [B, C, T, F] training | "
             "channels-last training | ratio |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['peers_fwd']:.1f} | {r['spikeforge_fwd']:.1f} | "
                     f"{r['spikeforge_fwd'] / r['peers_fwd']:.2f} | {r['peers_train']:.1f} | {r['spikeforge_train']:.1f} | "
                     f"{r['spikeforge_train'] / r['peers_train']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--densities", type=float, nargs="+", default=list(DENSITIES), help="fractions of nonzero inputs")
    p.add_argument("--layers", nargs="+", default=None, help="only the layers whose name starts with one of these (e.g. 'linear' 'narrow')")
    p.add_argument("--out", type=Path, default=None, help="write the table here (default: print it)")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = measure(args.rounds, args.densities, args.layers)
    text = report(rows, args.rounds, "python benchmarks/event_costs.py " + " ".join(sys.argv[1:]))
    if any(r["layer"].startswith("conv") for r in rows):
        text += layout_report(measure_layouts(args.rounds))
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
