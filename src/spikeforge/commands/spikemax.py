"""`spikeforge spikemax RECIPE`: train the four spike-based losses with the same seed and compare them (Figs. 2–7, spikemax paper).

Each loss gets its own run folder (`OUT/<name>_<loss>-<time>`); the comparison — accuracy
versus inference time, average spike count per layer, and a markdown table with the final
accuracy and the inference time at which 90 % of it is reached — goes to OUT/<name>_compare/.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from spikeforge.metrics.spikes import SpikeRecorder
from spikeforge.train import runfolder
from spikeforge.train.config import load_recipe
from spikeforge.train.encode import encode
from spikeforge.train.trainer import Trainer

LOSS_NAMES = ("spike_rate", "spikemax", "spikemax_g", "spikemax_s")


def loss_kwargs(loss: str, args: argparse.Namespace) -> dict:
    """Each loss's keyword arguments: target rates (eq. 4); window W (eq. 5), ε count and gradient mode (eqs. 11–14)."""
    if loss == "spike_rate":
        return {"true_rate": args.true_rate, "false_rate": args.false_rate}
    kwargs = {"gradient": args.gradient}
    if loss in ("spikemax", "spikemax_g"):
        kwargs["eps"] = args.eps
    if loss == "spikemax":
        kwargs["window"] = args.window
    return kwargs


def time_to_fraction(accuracy: list[float], fraction: float = 0.9) -> int:
    """First number of steps (1-based) after which the accuracy reaches `fraction` of its final value."""
    target = fraction * accuracy[-1]
    return next(t + 1 for t, a in enumerate(accuracy) if a >= target)


def neurons_per_layer(trainer: Trainer) -> dict[str, int]:
    """Number of neurons of each spiking layer, from one test sample."""
    x, _ = trainer.test_set[0]
    x = encode(x.unsqueeze(0).to(trainer.ctx.device), trainer.config["encoder"])
    with SpikeRecorder(trainer.model) as rec:
        trainer.model(x)
    return {name: int(np.prod(s.shape[2:])) for name, s in rec.spikes.items()}


def _plots(results: dict[str, dict], ms_per_step: float, out: Path) -> list[Path]:
    fig = Figure(figsize=(6.4, 4))
    ax = fig.subplots()
    for loss, r in results.items():
        acc = 100 * np.asarray(r["accuracy_vs_time"])
        ax.plot(ms_per_step * np.arange(1, len(acc) + 1), acc, label=loss)
    ax.set(xlabel="inference time (ms)", ylabel="test accuracy (%)", title="accuracy versus inference time")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_time.png", dpi=110)
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    layers = list(next(iter(results.values()))["spike_counts"])
    width = 0.8 / len(results)
    for k, (loss, r) in enumerate(results.items()):
        ax.bar(np.arange(len(layers)) + k * width, [r["spike_counts"][n] for n in layers], width, label=loss)
    ax.set_xticks(np.arange(len(layers)) + 0.4 - width / 2, layers)
    ax.set(ylabel="spikes per sample", title="average spike count per layer", yscale="log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "spike_counts.png", dpi=110)
    return [out / "accuracy_vs_time.png", out / "spike_counts.png"]


def table(results: dict[str, dict], ms_per_step: float) -> str:
    """Markdown table: final accuracy, time to 90 % of it, spike counts per layer, wall time."""
    layers = list(next(iter(results.values()))["spike_counts"])
    head = "| loss | test accuracy | 90 % of final at | " + " | ".join(f"spikes {n}" for n in layers) + " | wall time |"
    rows = [head, "|" + " --- |" * (len(layers) + 4)]
    for loss, r in results.items():
        counts = " | ".join(f"{r['spike_counts'][n]:.1f}" for n in layers)
        rows.append(f"| {loss} | {100 * r['accuracy']:.2f} % | {r['time_to_90'] * ms_per_step:g} ms | {counts} | {r['wall_time_s']:.0f} s |")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    results: dict[str, dict] = {}
    for loss in args.losses:
        kwargs = json.dumps(loss_kwargs(loss, args))
        config = load_recipe(args.recipe, [*args.overrides, f"method.loss={loss}", f"method.loss_kwargs={kwargs}"])
        run_dir = runfolder.new_run_dir(out, f"{config['name']}_{loss}")
        runfolder.write_config(run_dir, config)
        print(f"{loss}: run folder {run_dir}", flush=True)
        trainer = Trainer(config, run_dir, progress_bar=not args.no_progress)
        metrics = trainer.fit()
        steps = len(metrics["accuracy_vs_time"])
        neurons = neurons_per_layer(trainer)
        results[loss] = {
            "run": str(run_dir), "accuracy": metrics["accuracy"], "accuracy_vs_time": metrics["accuracy_vs_time"],
            "time_to_90": time_to_fraction(metrics["accuracy_vs_time"]), "wall_time_s": metrics["wall_time_s"],
            "spike_counts": {n: metrics["spike_rates"][n] * steps * neurons[n] for n in neurons},
        }
    name = load_recipe(args.recipe, args.overrides)["name"]
    ms_per_step = float(load_recipe(args.recipe, args.overrides)["dataset"].get("bin_us", 1000)) / 1000
    folder = out / f"{name}_compare"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=1))
    _plots(results, ms_per_step, folder)
    text = table(results, ms_per_step)
    (folder / "table.md").write_text(text + "\n")
    print(text)
    print(f"plots and table: {folder}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("spikemax", help="train spike_rate, spikemax, spikemax_g and spikemax_s on one recipe and compare latency and spike counts")
    p.add_argument("recipe", help="recipe name or YAML path (its method.loss is replaced by each loss in turn)")
    p.add_argument("--losses", nargs="+", default=list(LOSS_NAMES), choices=LOSS_NAMES, help="losses to compare (default: all four)")
    p.add_argument("--true-rate", type=float, default=0.2, help="spike_rate target for the true class (eq. 4; paper NMNIST: 0.2)")
    p.add_argument("--false-rate", type=float, default=0.04, help="spike_rate target for the other classes (paper NMNIST: 0.04)")
    p.add_argument("--window", type=int, default=30, help="spikemax count window W in steps (eq. 5; paper NMNIST: 30)")
    p.add_argument("--eps", type=float, default=0.3, help="count ε added to every class by spikemax and spikemax_g")
    p.add_argument("--gradient", choices=("paper", "exact"), default="paper", help="spikemax family: the paper's closed-form gradients or the exact derivative")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key (repeatable)")
    p.add_argument("--out", default="runs", help="folder for the run folders and the comparison (default: ./runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
