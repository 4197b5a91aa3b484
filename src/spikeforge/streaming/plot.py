"""The picture of a streamed recording: its features, and each class's smoothed posterior over time with the detections."""

from __future__ import annotations

from pathlib import Path

from spikeforge.streaming.run import StreamResult


def plot_stream(path: Path, result: StreamResult, classes: tuple[str, ...], hop_ms: float, threshold: float, title: str) -> None:
    """Two panels sharing the time axis: log-Mel input; smoothed posteriors, the threshold and a mark per detection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = result.smoothed.shape[0] * hop_ms / 1000
    t = [n * hop_ms / 1000 for n in range(result.smoothed.shape[0])]
    fig, (ax_in, ax_out) = plt.subplots(2, 1, figsize=(max(7.0, min(40.0, seconds)), 6), sharex=True)
    ax_in.imshow(result.features[:, 0].T.numpy(), origin="lower", aspect="auto", extent=(0, seconds, 0, result.features.shape[2]))
    ax_in.set_ylabel("Mel band")
    ax_in.set_title(title)
    for c, name in enumerate(classes):  # matplotlib hides legend labels that start with "_"
        ax_out.plot(t, result.smoothed[:, c].numpy(), label=name.strip("_"), linewidth=1.0)
    ax_out.axhline(threshold, color="k", linestyle="--", linewidth=0.8)
    for d in result.detections:
        ax_out.annotate(classes[d.label], (d.step * hop_ms / 1000, d.score), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8)
    ax_out.set_xlabel("time (s)")
    ax_out.set_ylabel("smoothed posterior")
    ax_out.set_ylim(0, 1.05)
    ax_out.legend(ncol=6, fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
