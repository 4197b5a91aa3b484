"""`spikeforge export RUN_DIR --format nir [--dt S] [--compat FORM] [--convert lif]`: write a trained model as a NIR graph."""

from __future__ import annotations

import argparse
from pathlib import Path

from spikeforge.export.nir_graph import COMPATS, export_nir
from spikeforge.neurons.noisy import convert
from spikeforge.train import runfolder
from spikeforge.train.encode import step_shape
from spikeforge.train.stages import trained_model
from spikeforge.train.trainer import build_split


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a run's trained model (NIR graph)")
    p.add_argument("run_dir", type=Path, help="a run folder (runs/NAME-TIMESTAMP)")
    p.add_argument("--format", choices=("nir",), default="nir")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--output", type=Path, default=None, help="file to write (default: RUN_DIR/model.nir)")
    p.add_argument("--dt", type=float, default=1e-3, help="seconds per time step, written into the file (default 1e-3; snnTorch 1.0 reads files at 1e-4)")
    p.add_argument("--compat", choices=COMPATS, default="nir",
                   help="form of the file, all exact by NIR's equations: nir (r = τ/dt, AvgPool2d; snnTorch), norse (r = 1, SumPool2d) "
                        "or snn-mlir (no Delay nodes, no dilation: kernels over time as recurrent delay lines)")
    p.add_argument("--convert", choices=("lif",), default=None,
                   help="noise-trained runs: export the network converted to the plain LIF of eqs. (1)-(3) (convert(model, mode='lif'))")
    p.set_defaults(func=run)


def input_shape(run_dir: Path, config: dict) -> tuple[int, ...]:
    """The network's input per sample and step: from the run's metrics.json, else from one encoded sample of its dataset
    (a run that has not finished, or one trained before metrics.json recorded it)."""
    metrics = run_dir / runfolder.JSON
    if metrics.exists() and "input_shape" in (recorded := runfolder.read_metrics(run_dir)):
        return tuple(recorded["input_shape"])
    return step_shape(build_split(config["dataset"], config["seed"], "test")[0][0], config["encoder"])


def run(args: argparse.Namespace) -> int:
    config, model, _ = trained_model(args.run_dir, args.checkpoint)  # the last stage's model for a staged recipe
    if args.convert:
        convert(model, mode=args.convert)
    shape = input_shape(args.run_dir, config)
    out = export_nir(model, shape, args.output or args.run_dir / "model.nir", dt=args.dt, compat=args.compat)
    print(f"wrote {out} (NIR graph of {config['model']['name']}, input shape {shape} per step, dt = {args.dt:g} s)")
    return 0
