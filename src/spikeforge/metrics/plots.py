"""PNG plots of a run from plain numbers: learning curves, spike rates, a raster, output traces, accuracy vs time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def learning_curves(history: list[dict], path: Path) -> Path:
    """Loss and accuracy per epoch, train and validation (from the rows of metrics.csv)."""
    fig = Figure(figsize=(9, 3.6))
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    for split, style in (("train", "-o"), ("val", "--s")):
        if history and f"{split}_loss" in history[0]:
            ax_loss.plot(epochs, [r[f"{split}_loss"] for r in history], style, label=split)
            ax_acc.plot(epochs, [100 * r[f"{split}_acc"] for r in history], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def spike_rates(rates: dict[str, float], path: Path) -> Path:
    """Mean firing rate of each spiking layer (spikes per neuron per step), as bars."""
    fig = Figure(figsize=(max(4, 1.2 * len(rates) + 2), 3.6))
    ax = fig.subplots()
    names = list(rates)
    bars = ax.bar(range(len(names)), [100 * rates[n] for n in names], color="tab:orange")
    ax.bar_label(bars, fmt="%.2f%%")
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set(ylabel="spike rate (%)", title="mean spike rate per layer (test set)")
    return _save(fig, path)


def raster(spikes: dict[str, np.ndarray], path: Path, max_neurons: int = 200) -> Path:
    """Spike raster of one sample: per layer, neuron index against time step (first `max_neurons` neurons)."""
    fig = Figure(figsize=(8, 2.2 * max(1, len(spikes)) + 0.5))
    axes = np.atleast_1d(fig.subplots(max(1, len(spikes)), 1, squeeze=False)[:, 0])
    for ax, (name, s) in zip(axes, spikes.items()):
        s = s.reshape(s.shape[0], -1)[:, :max_neurons]
        t, n = np.nonzero(s)
        ax.scatter(t, n, s=4, marker="|", color="black")
        ax.set(xlim=(-0.5, s.shape[0] - 0.5), ylim=(-0.5, s.shape[1] - 0.5), ylabel="neuron", title=f"{name}: {int(s.sum())} spikes")
    axes[-1].set_xlabel("time step")
    return _save(fig, path)


def output_traces(outputs: np.ndarray, label: int, path: Path) -> Path:
    """Per-step output scores [T, classes] of one sample, the true class drawn thick."""
    fig = Figure(figsize=(7, 3.6))
    ax = fig.subplots()
    for c in range(outputs.shape[1]):
        ax.plot(outputs[:, c], lw=2.5 if c == label else 0.9, label=f"class {c}" if c == label else None)
    ax.set(xlabel="time step", ylabel="output score", title=f"output traces (true class {label} thick)")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def accuracy_vs_time(accuracy: list[float], path: Path) -> Path:
    """Test accuracy when only the first t steps are seen, t = 1..T."""
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    ax.plot(range(1, len(accuracy) + 1), [100 * a for a in accuracy], "-o")
    ax.set(xlabel="steps seen", ylabel="accuracy (%)", title="accuracy versus inference time")
    ax.grid(alpha=0.3)
    return _save(fig, path)
