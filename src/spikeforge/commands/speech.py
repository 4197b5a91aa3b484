"""`spikeforge predict RUN_DIR FILE.wav` and `spikeforge ablate RECIPE`: keyword spotting (low-activity paper).

`predict` classifies one WAV file with a trained run and plots the per-step scores (Fig. 2c).
`ablate` trains the Table 2 variants of a recipe and writes a markdown table like Table 2.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import time
from pathlib import Path

import torch

from spikeforge.data.audio_features import LogMelConfig, log_mel
from spikeforge.data.speech_commands import CLASSES, features_of, read_wav
from spikeforge.metrics.reduce import reduce_time
from spikeforge.registry import MODELS
from spikeforge.train import runfolder
from spikeforge.train.config import apply_overrides, find_recipe, read_recipe, validate
from spikeforge.train.loading import load_run
from spikeforge.train.trainer import Trainer

#: Table 2 (plus §10.4 and the CNN of §10): row label, model factory, method overrides.
VARIANTS: dict[str, tuple[str, str, dict]] = {
    "full": ("Full SNN model", "kws_dilated", {}),
    "no_dilation": ("1-a) w/o dilation", "kws_no_dilation", {}),
    "large_kernels": ("1-b) w/o dilation, large kernels", "kws_large_kernels", {}),
    "no_reg": ("2) w/o spik. regul.", "kws_dilated", {"reg_weight": 0.0}),
    "nlif_reg": ("3-a) NLIF, w/ spik. regul.", "kws_nlif", {}),
    "nlif_no_reg": ("3-b) NLIF, w/o spik. regul.", "kws_nlif", {"reg_weight": 0.0}),
    "frozen": ("4) frozen β and b (§10.4)", "kws_frozen", {}),
    "cnn": ("non-spiking CNN (§10)", "kws_cnn", {"reg_weight": 0.0}),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify a WAV file with a trained keyword-spotting run; plot the per-step scores")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("wav", type=Path, metavar="FILE.wav")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--png", type=Path, default=None, help="score-trace plot (default: RUN_DIR/predict-<FILE>.png)")
    p.set_defaults(func=predict)

    a = sub.add_parser("ablate", help="train the Table 2 ablations of a keyword-spotting recipe and write a markdown table")
    a.add_argument("recipe", help="recipe name or YAML path (its model must be kws_dilated)")
    a.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of: {', '.join(VARIANTS)}")
    a.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key for every variant")
    a.add_argument("--out", default="runs", help="folder for the run folders (default ./runs)")
    a.add_argument("--table", type=Path, default=Path("ablation.md"), help="markdown table to write (default ablation.md)")
    a.set_defaults(func=ablate)


# -- predict ---------------------------------------------------------------------------------------
def score_trace(model: torch.nn.Module, wave, features: LogMelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(features `[T, C, F]`, per-step scores `[T, classes]`) of one clip."""
    x = log_mel(wave, features)
    with torch.no_grad():
        scores = model(x.unsqueeze(1))[:, 0]
    return x, scores


def plot_trace(path: Path, x: torch.Tensor, scores: torch.Tensor, title: str, hop_ms: float) -> None:
    """Two panels like Fig. 2 (a, c): the log-Mel input, and the twelve class scores over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_ms = torch.arange(scores.shape[0]) * hop_ms
    fig, (ax_in, ax_out) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    ax_in.imshow(x[:, 0].T.numpy(), origin="lower", aspect="auto", extent=(0, float(t_ms[-1] + hop_ms), 0, x.shape[2]))
    ax_in.set_ylabel("Mel band")
    ax_in.set_title(title)
    top = int(scores.mean(0).argmax())
    for c, name in enumerate(CLASSES):  # matplotlib hides legend labels that start with "_"
        ax_out.plot(t_ms.numpy(), scores[:, c].numpy(), label=name.strip("_"), linewidth=2.5 if c == top else 1.0)
    ax_out.set_xlabel("time (ms)")
    ax_out.set_ylabel("readout score")
    ax_out.legend(ncol=4, fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def predict(args: argparse.Namespace) -> int:
    config, model, _ = load_run(args.run_dir, args.checkpoint, "speech_commands")
    features = features_of(config["dataset"])
    x, scores = score_trace(model, read_wav(args.wav, features.sample_rate), features)
    probs = reduce_time(scores.unsqueeze(1), model.output_reduction)[0].softmax(-1)
    top = int(probs.argmax())
    png = args.png or args.run_dir / f"predict-{args.wav.stem}.png"
    plot_trace(png, x, scores, f"{args.wav.name}: {CLASSES[top]} ({100 * float(probs[top]):.1f}%)", features.hop_ms)
    print(f"{args.wav}: {CLASSES[top]} (probability {float(probs[top]):.3f})")
    print(f"score trace: {png}")
    return 0


# -- ablate ----------------------------------------------------------------------------------------
def variant_config(base: dict, variant: str) -> dict:
    """The recipe of one Table 2 variant: its model factory (keeping the base model's applicable arguments) and method changes."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown ablation variant {variant!r}; known: {', '.join(VARIANTS)}")
    if base["model"]["name"] != "kws_dilated":
        raise ValueError(f"ablate needs a recipe whose model is kws_dilated, got {base['model']['name']!r}")
    _, model_name, method = VARIANTS[variant]
    config = copy.deepcopy(base)
    accepted = inspect.signature(MODELS.get(model_name)).parameters
    config["model"] = {"name": model_name, **{k: v for k, v in base["model"].items() if k in accepted and k != "name"}}
    config["method"].update(method)
    config["name"] = f"{base['name']}-{variant}"
    return validate(config)


def table_row(label: str, metrics: dict) -> str:
    """One markdown row: params (M), valid/test error (%), % spikes of each conv layer, epochs, wall time."""
    rates = [f"{100 * r:.1f}" for r in metrics["spike_rates"].values()] or ["–"]
    cells = [label, f"{metrics['parameters'] / 1e6:.3f}", f"{100 * (1 - metrics['best_val_accuracy']):.1f}",
             f"{100 * (1 - metrics['accuracy']):.1f}", " / ".join(rates), str(metrics["epochs"]), f"{metrics['wall_time_s']:.0f}"]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| model | params (M) | valid ER (%) | test ER (%) | % spikes per conv layer (1 / 2 / 3) | epochs | wall (s) |\n"
    "| --- | --- | --- | --- | --- | --- | --- |"
)


def ablate(args: argparse.Namespace) -> int:
    path = find_recipe(args.recipe)
    base = validate(apply_overrides(read_recipe(path), args.overrides))
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    configs = [(v, variant_config(base, v)) for v in names]  # every variant checked before any training
    rows = []
    for variant, config in configs:
        run_dir = runfolder.new_run_dir(args.out, config["name"])
        runfolder.write_config(run_dir, config)
        print(f"[{variant}] run folder: {run_dir}", flush=True)
        start = time.perf_counter()
        metrics = Trainer(config, run_dir, progress_bar=False).fit()
        rows.append(table_row(VARIANTS[variant][0], metrics))
        args.table.parent.mkdir(parents=True, exist_ok=True)
        overrides = " ".join(f"--set {o}" for o in args.overrides)
        args.table.write_text(
            f"Ablations of `{path}` {overrides}".rstrip() + " (valid ER: best epoch; test ER and spike rates: test split, best epoch)\n\n"
            + HEADER + "\n" + "\n".join(rows) + "\n"
        )
        print(f"[{variant}] {rows[-1]}  ({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"table: {args.table}")
    return 0
