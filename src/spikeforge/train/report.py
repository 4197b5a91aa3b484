"""A run's plots and summary table, regenerated from the files of its run folder."""

from __future__ import annotations

from pathlib import Path

from spikeforge.train import runfolder


def write_plots(run: Path) -> list[Path]:
    """Write every PNG the run folder's data allows; returns the files written."""
    from spikeforge.metrics import plots  # matplotlib loads when plots are written, not when training starts

    run = Path(run)
    metrics = runfolder.read_metrics(run)
    written = []
    history = runfolder.read_history(run)
    if history:
        written.append(plots.learning_curves(history, run / "learning_curves.png"))
    if metrics.get("spike_rates"):
        written.append(plots.spike_rates(metrics["spike_rates"], run / "spike_rates.png"))
    if metrics.get("accuracy_vs_time"):
        written.append(plots.accuracy_vs_time(metrics["accuracy_vs_time"], run / "accuracy_vs_time.png"))
    sample = runfolder.read_sample(run)
    if sample is not None:
        spikes, outputs, label = sample
        if spikes:
            written.append(plots.raster(spikes, run / "spike_raster.png"))
        if outputs.ndim == 2:
            written.append(plots.output_traces(outputs, label, run / "output_traces.png"))
    return written


def summary_table(metrics: dict) -> str:
    """A plain-text table of the headline numbers and the per-layer spike rates."""
    rows = [
        ("test accuracy", f"{100 * metrics['accuracy']:.2f}% ({metrics['test_samples']} samples, {metrics['checkpoint']})"),
        *((("balanced accuracy", f"{100 * metrics['balanced_accuracy']:.2f}% (mean per-class accuracy)"),)
          if metrics.get("balanced_accuracy") is not None else ()),
        *((("keyword recall", f"{100 * metrics['keyword_recall']:.2f}%"),) if metrics.get("keyword_recall") is not None else ()),
        ("test loss", f"{metrics['loss']:.4f}"),
        *((("mean spike rate", f"{100 * metrics['mean_spike_rate']:.2f}%"),) if metrics["spike_rates"] else ()),  # none without spikes
        *((f"  spike rate {name}", f"{100 * rate:.2f}%") for name, rate in metrics["spike_rates"].items()),
        ("synaptic ops / sample", f"{metrics['synops_per_sample']:.4g}"),
        ("parameters", f"{metrics['parameters']:,}"),
        ("epochs / steps", f"{metrics['epochs']} / {metrics['steps']}"),
        ("wall time", f"{metrics['wall_time_s']:.1f} s"),
        ("peak memory", f"{metrics['peak_memory_mb']:.0f} MiB"),
    ]
    if metrics.get("accuracy_vs_time"):
        curve = metrics["accuracy_vs_time"]
        rows.append(("accuracy after t steps", ", ".join(f"t={t + 1}: {100 * a:.1f}%" for t, a in enumerate(curve) if t in _marks(len(curve)))))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _marks(steps: int) -> set[int]:
    """A handful of evenly spread step indices, always including the last."""
    return {round(i * (steps - 1) / 4) for i in range(5)} if steps > 1 else {0}
