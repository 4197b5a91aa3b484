"""Accuracy versus T of trained single-step runs (noise-based faster SNN training paper, Figs. 2, 5, 6).

Each run's network is converted by step 2 ("ensemble"), step 3 ("accumulate", eqs. (6)–(9)) or run as the plain
LIF of eq. (1) ("lif"), and tested after T = 1, 2, 5, … steps; a table, a JSON file and a PNG go to one folder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import DataLoader, Subset

from spikeforge.functional.noisy_lif import check_steps
from spikeforge.methods.noise_single_step import NoiseNetMethod, repeat_steps
from spikeforge.metrics.latency import correct_vs_time
from spikeforge.neurons.noisy import NoisyLIF, converted
from spikeforge.train import checkpoint, runfolder
from spikeforge.train.config import validate
from spikeforge.train.trainer import build, build_split
from spikeforge.registry import METHODS, MODELS

STEPS = (1, 2, 5, 10, 20)


@torch.no_grad()
def accuracy_vs_steps(model: nn.Module, loader: DataLoader, steps: list[int], mode: str, alpha: float) -> dict[int, float]:
    """Accuracy after T steps for each T in `steps`, from one run at max(steps) (the network is causal)."""
    model.eval()
    t_max = max(check_steps(t) for t in steps)
    correct, count = torch.zeros(t_max, dtype=torch.float64), 0
    with converted(model, mode=mode, alpha=alpha):
        for x, y in loader:
            outputs = model(repeat_steps(x.unsqueeze(0), t_max))
            correct += correct_vs_time(outputs, y, model.output_reduction).double()
            count += y.shape[0]
    return {t: float(correct[t - 1] / count) for t in steps}


def modes_for(noise: str, modes: list[str]) -> list[str]:
    """The conversions worth reporting for a model trained with `noise`: without noise, step 3 has no noise to
    accumulate, and the plain LIF is what such a network would be run as."""
    if noise != "none":
        return list(modes)
    return [m for m in modes if m != "accumulate"] + ([] if "lif" in modes else ["lif"])


def rows_for(label: str, model: nn.Module, loader: DataLoader, steps: list[int], modes: list[str], alphas: list[float]) -> tuple[list[dict], list[str]]:
    """One table row per conversion mode (and per α for step 3); a mode the model cannot take becomes a note."""
    rows, notes = [], []
    for mode, alpha in ((m, a) for m in modes for a in (alphas if m == "accumulate" else [math.inf])):
        try:
            acc = accuracy_vs_steps(model, loader, steps, mode, alpha)
        except ValueError as err:
            notes.append(f"{label}, {mode}: not run ({err})")
            continue
        rows.append({"model": label, "mode": mode, "alpha": alpha if mode == "accumulate" else None, "accuracy": acc})
    return rows, notes


def trained_noise_net(run: Path) -> tuple[dict, nn.Module]:
    """(recipe, model with the best checkpoint, else the last) of a run of method noise_single_step on NoisyLIF neurons."""
    config = validate(runfolder.read_config(run))
    model = build(MODELS, config["model"])
    if not isinstance(build(METHODS, config["method"]), NoiseNetMethod) or not any(isinstance(m, NoisyLIF) for m in model.modules()):
        raise ValueError(f"{run}: recipe {config['name']!r} is not a noise_single_step run of NoisyLIF neurons (e.g. noise_fmnist)")
    checkpoint.load_weights(checkpoint.resolve(run, "best" if (Path(run) / "checkpoints" / "best").exists() else "last"), model)
    return config, model


def accuracy_vs_t(runs: list[Path], steps: list[int], modes: list[str], alphas: list[float], test_limit: int | None, batch_size: int) -> tuple[list[dict], list[str]]:
    """Rows (one per run and conversion) of test accuracy at each T in `steps`, and notes on conversions not run."""
    for t in steps:
        check_steps(t)
    if not all(alpha > 0 for alpha in alphas):
        raise ValueError(f"--alpha must be > 0 (eq. (9) divides by α·max|Â|), got {alphas}")
    rows, notes = [], []
    for run in runs:
        config, model = trained_noise_net(run)
        test = build_split(config["dataset"], config["seed"], "test")
        loader = DataLoader(test if test_limit is None else Subset(test, range(min(test_limit, len(test)))), batch_size=batch_size)
        noise = config["model"].get("noise", "gaussian")
        label = f"{'no noise' if noise == 'none' else noise + ' noise'} ({Path(run).name})"
        r, n = rows_for(label, model, loader, steps, modes_for(noise, modes), alphas)
        rows, notes = rows + r, notes + n
    return rows, notes


def write_accuracy_report(rows: list[dict], notes: list[str], steps: list[int], out: Path, extra: dict) -> str:
    """accuracy_vs_t.md, .json and .png in `out`; returns the markdown table."""
    out.mkdir(parents=True, exist_ok=True)
    head = "| model | conversion | " + " | ".join(f"T = {t}" for t in steps) + " |"
    lines = [head, "|" + " --- |" * (len(steps) + 2)]
    for r in rows:
        mode = f"step 3, α = {r['alpha']:g}" if r["mode"] == "accumulate" else {"ensemble": "step 2 (ensemble)", "lif": "plain LIF, eq. (1)"}[r["mode"]]
        lines.append(f"| {r['model']} | {mode} | " + " | ".join(f"{100 * r['accuracy'][t]:.2f}" for t in steps) + " |")
    table = "\n".join(lines + [""] + [f"- {n}" for n in notes])
    (out / "accuracy_vs_t.md").write_text("Test accuracy (%) versus the number of time steps T.\n\n" + table + "\n")
    (out / "accuracy_vs_t.json").write_text(json.dumps({**extra, "rows": rows, "notes": notes}, indent=2) + "\n")
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for r in rows:
        label = f"{r['model']}, {r['mode']}" + (f" α={r['alpha']:g}" if r["mode"] == "accumulate" else "")
        ax.plot(steps, [100 * r["accuracy"][t] for t in steps], "-o" if r["mode"] == "accumulate" else "--s", label=label)
    ax.set(xscale="log", xlabel="time steps T", ylabel="test accuracy (%)", title="accuracy versus T after single-step training")
    ax.set_xticks(steps, [str(t) for t in steps])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_t.png", dpi=110)
    return table
