"""The Table 2 ablations of a keyword-spotting recipe (low-activity paper): one run per variant, a markdown table like Table 2."""

from __future__ import annotations

import copy
import inspect
import time
from pathlib import Path
from typing import Callable

from spikeforge.registry import MODELS
from spikeforge.train import runfolder
from spikeforge.train.atomic import atomic_write_text
from spikeforge.train.config import find_recipe, load_recipe, validate
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

HEADER = (
    "| model | params (M) | valid ER (%) | test ER (%) | % spikes per conv layer (1 / 2 / 3) | epochs | wall (s) |\n"
    "| --- | --- | --- | --- | --- | --- | --- |"
)


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


def ablate(recipe: str, overrides: list[str], variants: list[str], out: Path, table: Path, log: Callable[[str], None] = print) -> list[str]:
    """Train each variant of `recipe` into a run folder under `out`, rewriting `table` after each; returns the rows."""
    base = load_recipe(recipe, overrides)
    configs = [(v, variant_config(base, v)) for v in variants]  # every variant checked before any training
    title = f"Ablations of `{find_recipe(recipe)}` {' '.join(f'--set {o}' for o in overrides)}".rstrip()
    rows = []
    for variant, config in configs:
        start = time.perf_counter()
        run_dir, trainer = runfolder.start_run(out, config["name"], config, lambda run: Trainer(config, run, progress_bar=False))
        log(f"[{variant}] run folder: {run_dir}")
        metrics = trainer.fit()
        rows.append(table_row(VARIANTS[variant][0], metrics))
        table.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(table, f"{title} (valid ER: best epoch; test ER and spike rates: test split, best epoch)\n\n{HEADER}\n" + "\n".join(rows) + "\n")
        log(f"[{variant}] {rows[-1]}  ({time.perf_counter() - start:.0f} s)")
    return rows
