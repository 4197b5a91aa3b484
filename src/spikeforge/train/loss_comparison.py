"""Train one recipe once per spike-based loss with the same seed and compare them (Figs. 2–7, spikemax paper).

Each loss gets its own run folder (`OUT/<name>_<loss>-<time>`); the comparison — accuracy versus inference
time, average spike count per layer, and a markdown table with the final accuracy and the inference time at
which 90 % of it is reached — goes to OUT/<name>_compare/.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from spikeforge.metrics.spikes import SpikeRecorder
from spikeforge.registry import LOSSES
from spikeforge.train import runfolder
from spikeforge.train.config import load_recipe
from spikeforge.train.encode import encode
from spikeforge.train.trainer import Trainer

LOSS_NAMES = ("spike_rate", "spikemax", "spikemax_g", "spikemax_s")


def loss_kwargs(loss: str, recipe_kwargs: dict, given: dict) -> dict:
    """`loss`'s keyword arguments: the recipe's `method.loss_kwargs`, then the values given on the command line
    (None = not given), each kept only where `loss` takes it (e.g. the window W of eq. 5 only for spikemax)."""
    takes = set(inspect.signature(LOSSES.get(loss)).parameters) - {"outputs", "targets"}
    merged = {**recipe_kwargs, **{k: v for k, v in given.items() if v is not None}}
    return {k: v for k, v in merged.items() if k in takes}


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


def _plots(results: dict[str, dict], ms_per_step: float, out: Path) -> None:
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


def table(results: dict[str, dict], ms_per_step: float) -> str:
    """Markdown table: final accuracy, time to 90 % of it, spike counts per layer, wall time."""
    layers = list(next(iter(results.values()))["spike_counts"])
    head = "| loss | test accuracy | 90 % of final at | " + " | ".join(f"spikes {n}" for n in layers) + " | wall time |"
    rows = [head, "|" + " --- |" * (len(layers) + 4)]
    for loss, r in results.items():
        counts = " | ".join(f"{r['spike_counts'][n]:.1f}" for n in layers)
        rows.append(f"| {loss} | {100 * r['accuracy']:.2f} % | {r['time_to_90'] * ms_per_step:g} ms | {counts} | {r['wall_time_s']:.0f} s |")
    return "\n".join(rows)


def compare_losses(recipe: str, overrides: list[str], losses: list[str], given: dict, out: Path,
                   progress_bar: bool = True, log=print) -> tuple[Path, str]:
    """Train `recipe` once per loss in `losses`; write the comparison folder; return it and the table."""
    base = load_recipe(recipe, overrides)
    results: dict[str, dict] = {}
    for loss in losses:
        kwargs = json.dumps(loss_kwargs(loss, base["method"].get("loss_kwargs") or {}, given))
        config = load_recipe(recipe, [*overrides, f"method.loss={loss}", f"method.loss_kwargs={kwargs}"])
        run_dir, trainer = runfolder.start_run(out, f"{config['name']}_{loss}", config,
                                               lambda run, config=config: Trainer(config, run, progress_bar=progress_bar))
        log(f"{loss} ({kwargs}): run folder {run_dir}")
        metrics = trainer.fit()
        steps = len(metrics["accuracy_vs_time"])
        neurons = neurons_per_layer(trainer)
        results[loss] = {
            "run": str(run_dir), "loss_kwargs": config["method"]["loss_kwargs"], "accuracy": metrics["accuracy"],
            "accuracy_vs_time": metrics["accuracy_vs_time"], "time_to_90": time_to_fraction(metrics["accuracy_vs_time"]),
            "wall_time_s": metrics["wall_time_s"], "spike_counts": {n: metrics["spike_rates"][n] * steps * neurons[n] for n in neurons},
        }
    ms_per_step = float(base["dataset"].get("bin_us", 1000)) / 1000
    folder = Path(out) / f"{base['name']}_compare"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=1))
    _plots(results, ms_per_step, folder)
    text = table(results, ms_per_step)
    (folder / "table.md").write_text(text + "\n")
    return folder, text
