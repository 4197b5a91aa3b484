"""`spikeforge hybrid RECIPE`: the hybrid paper's two-stage pipeline, written up like its Tables 1–4.

Stage 1 trains the ANN with the conversion constraints (eqs. 9–11); it is converted with and without force firing
(eq. 8) and fine-tuned with STDBP (arm "hybrid"). The baseline (arm "baseline", the paper's STDBP row) trains the
same ANN with CE only, converts it the same way and fine-tunes it for the same number of epochs. "Epochs to converge" is the first fine-tuning
epoch whose test accuracy is within `converge_tolerance` (points) of the best one of that run.
"""

from __future__ import annotations

import argparse
import difflib
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.data import DataLoader, Dataset, Subset

from spikeforge.losses.conversion import constraint_report
from spikeforge.methods.hybrid_temporal import (accuracy, ann_forward, calibrate_output_threshold, convert_to_snn, train_epoch,
                                                 weighted_layers)
from spikeforge.registry import DATASETS, METHODS, MODELS

DEFAULTS: dict[str, Any] = {
    "name": "hybrid",
    "seed": 0,
    "dataset": {"name": "fashion_mnist"},
    "train_limit": None,
    "test_limit": None,
    "model": "hybrid_fc2",
    "analog_layers": 0,
    "batch_size": 128,
    "eval_batch_size": 1000,
    "ann": {"epochs": 6, "lr": 1e-3, "gamma": 0.6, "lambda_w": 1e-2, "lambda_a": 1e-2},
    "snn": {"epochs": 4, "lr": 1e-4, "gamma": 0.7, "min_denominator": 0.1, "force_firing": True, "output_threshold": 1.0},
    "calibration_samples": 2000,
    "arms": ["hybrid", "baseline"],
    "converge_tolerance": 0.5,
    "output": "docs/results/hybrid.md",
}
ARMS = {"hybrid": ("Ours (hybrid)", True), "baseline": ("STDBP (CE-only init)", False)}  # label, constrained ANN
RECIPE_DIR = Path(__file__).resolve().parents[3] / "recipes"


def _merge(defaults: dict, given: dict, prefix: str = "") -> dict:
    """Recipe values over defaults; an unknown key is a one-line error naming the closest valid key."""
    out = dict(defaults)
    for key, value in given.items():
        if key not in defaults:
            close = difflib.get_close_matches(key, list(defaults), n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            raise ValueError(f"hybrid recipe: unknown key '{prefix}{key}'{hint} (valid: {', '.join(defaults)})")
        if isinstance(defaults[key], dict) and key != "dataset":
            if not isinstance(value, dict):
                raise ValueError(f"hybrid recipe: {prefix}{key} must be a mapping, got {value!r}")
            value = _merge(defaults[key], value, f"{prefix}{key}.")
        out[key] = value
    return out


def load_recipe(spec: str, overrides: list[str] = ()) -> dict:
    """Read a recipe (a path, or a name in recipes/) and apply `key.sub=value` overrides (YAML values)."""
    path = Path(spec)
    if not path.exists():
        path = RECIPE_DIR / f"{spec}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"hybrid recipe {spec!r} not found (neither a file nor recipes/{spec}.yaml)")
    given = yaml.safe_load(path.read_text()) or {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        *parents, leaf = key.split(".")
        node = given
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return _merge(DEFAULTS, given)


def _output_threshold(recipe: dict, ann, train: DataLoader) -> float:
    """ϑ_out from the recipe: a number, or 'auto' (calibrated on the first training samples)."""
    value = recipe["snn"]["output_threshold"]
    if value == "auto":
        x = torch.cat([xb for xb, _ in _take(train, recipe["calibration_samples"])])
        snn = convert_to_snn(ann, recipe["snn"]["force_firing"], recipe["analog_layers"], min_denominator=recipe["snn"]["min_denominator"])
        return calibrate_output_threshold(ann, snn, x)
    return float(value)


def _check(recipe: dict) -> None:
    """Values the training loop would only trip over late: arms and the output threshold."""
    value = recipe["snn"]["output_threshold"]
    if value != "auto" and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
        raise ValueError(f"hybrid recipe: snn.output_threshold must be a number > 0 or 'auto', got {value!r}")
    if not recipe["arms"] or any(arm not in ARMS for arm in recipe["arms"]):
        raise ValueError(f"hybrid recipe: arms must be a non-empty list of 'hybrid' and 'baseline', got {recipe['arms']!r}")


def _take(loader: DataLoader, samples: int):
    """Batches of `loader` until `samples` samples have been seen."""
    seen = 0
    for batch in loader:
        if seen >= samples:
            return
        seen += len(batch[1])
        yield batch


def _first(dataset: Dataset, limit: int | None) -> Dataset:
    """The first `limit` samples of `dataset` (all of them when `limit` is None)."""
    return dataset if limit is None else Subset(dataset, range(min(limit, len(dataset))))


def _loaders(recipe: dict) -> tuple[DataLoader, DataLoader]:
    data = dict(recipe["dataset"])
    factory = DATASETS.get(data.pop("name"))
    train = _first(factory(split="train", **data), recipe["train_limit"])
    test = _first(factory(split="test", **data), recipe["test_limit"])
    gen = torch.Generator().manual_seed(recipe["seed"])
    return (DataLoader(train, batch_size=recipe["batch_size"], shuffle=True, generator=gen),
            DataLoader(test, batch_size=recipe["eval_batch_size"]))


def _fit(model, method, train, test, epochs: int, lr: float, gamma: float, log) -> list[dict]:
    """Adam with exponential decay per epoch; the test accuracy and mean extras after every epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)
    history = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        stats = train_epoch(model, method, train, optimizer)
        schedule.step()
        stats.update(epoch=epoch, test_acc=accuracy(model, method, test), seconds=time.perf_counter() - start)
        log(f"  epoch {epoch}: " + ", ".join(f"{k}={v:.4g}" for k, v in stats.items() if k != "epoch"))
        history.append(stats)
    return history


def _converged(history: list[dict], tolerance: float) -> int:
    best = max(h["test_acc"] for h in history)
    return next(h["epoch"] for h in history if 100 * (best - h["test_acc"]) <= tolerance)


def run_arm(recipe: dict, constrained: bool, train: DataLoader, test: DataLoader, log) -> dict:
    """One arm: ANN (constrained or CE-only) → conversion with / without FF → STDBP fine-tuning."""
    torch.manual_seed(recipe["seed"])
    ann_cfg, snn_cfg = recipe["ann"], recipe["snn"]
    ann = MODELS.get(recipe["model"])()
    lam = (ann_cfg["lambda_w"], ann_cfg["lambda_a"]) if constrained else (0.0, 0.0)
    ann_method = METHODS.get("hybrid_ann")(lambda_w=lam[0], lambda_a=lam[1], analog_layers=recipe["analog_layers"])
    log(f"ANN ({'constrained' if constrained else 'CE only'}), lambda_w={lam[0]}, lambda_a={lam[1]}")
    start = time.perf_counter()
    ann_history = _fit(ann, ann_method, train, test, ann_cfg["epochs"], ann_cfg["lr"], ann_cfg["gamma"], log)
    result: dict[str, Any] = {"ann_acc": ann_history[-1]["test_acc"], "ann_seconds": time.perf_counter() - start}
    x, _ = next(iter(test))
    with torch.no_grad():
        _, pre = ann_forward(ann, x)
    result["table1"] = constraint_report({n: m.weight for n, m in weighted_layers(ann)}, dict(pre))
    stdbp = METHODS.get("stdbp")()
    theta = result["output_threshold"] = _output_threshold(recipe, ann, train)

    def convert(ff: bool, output_threshold: float):
        return convert_to_snn(ann, ff, recipe["analog_layers"], min_denominator=snn_cfg["min_denominator"],
                              output_threshold=output_threshold)

    result["init_acc_ff1_theta1"] = accuracy(convert(True, 1.0), stdbp, test)  # the paper's ϑ = 1 everywhere
    for ff in (True, False):
        snn = convert(ff, theta)
        result[f"init_acc_ff{int(ff)}"] = accuracy(snn, stdbp, test)
        with torch.no_grad():
            result[f"init_stats_ff{int(ff)}"] = snn.run(x)[1]
    log(f"  converted: output threshold {theta:.3g}: FF {result['init_acc_ff1']:.4f}, w/o FF {result['init_acc_ff0']:.4f}; "
        f"FF with output threshold 1: {result['init_acc_ff1_theta1']:.4f}")
    snn = convert(snn_cfg["force_firing"], theta)
    start = time.perf_counter()
    history = _fit(snn, stdbp, train, test, snn_cfg["epochs"], snn_cfg["lr"], snn_cfg["gamma"], log)
    result.update(snn_history=history, final_acc=history[-1]["test_acc"], snn_seconds=time.perf_counter() - start,
                  converged=_converged(history, recipe["converge_tolerance"]))
    return result


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def render(recipe: dict, arms: dict[str, dict], command: str) -> str:
    """Markdown: the Tables 2–4 row format, Table 1 constraint report, per-epoch fine-tuning curves."""
    ff = "FF" if recipe["snn"]["force_firing"] else "w/o FF"
    lines = [f"## {recipe['name']}: {recipe['model']} on {recipe['dataset']['name']}", "",
             f"Command: `{command}`", "",
             "Init acc. is the SNN right after conversion, in brackets the ANN it came from (the paper's "
             "f_s(·; θ_a) [f_a(·; θ_a)]), with the output threshold ϑ_out of the recipe "
             f"({recipe['snn']['output_threshold']}) and, in the first column, with the paper's ϑ_out = 1; final is after "
             f"STDBP fine-tuning ({ff}, {recipe['snn']['epochs']} epochs).", "",
             "| model | init acc. FF, ϑ_out = 1 (%) | ϑ_out | init acc. FF (%) | init acc. w/o FF (%) | final (%) | "
             "epochs to converge | ANN s | SNN s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, arm in arms.items():
        ann = _pct(arm["ann_acc"])
        lines.append(f"| {label} | {_pct(arm['init_acc_ff1_theta1'])} [{ann}] | {arm['output_threshold']:.3g} | "
                     f"{_pct(arm['init_acc_ff1'])} [{ann}] | {_pct(arm['init_acc_ff0'])} [{ann}] | {_pct(arm['final_acc'])} | "
                     f"{arm['converged']} | {arm['ann_seconds']:.0f} | {arm['snn_seconds']:.0f} |")
    for label, arm in arms.items():
        lines += ["", f"### {label}: constraints after the ANN stage (Table 1, one test batch)", "",
                  "| layer | min Σw | max Σw | h < 1 (%) |", "| --- | --- | --- | --- |"]
        for layer, row in arm["table1"].items():
            below = _pct(row["h_below_1"]) if "h_below_1" in row else "-"
            lines.append(f"| {layer} | {row['weight_sum_min']:.3f} | {row['weight_sum_max']:.3f} | {below} |")
        stats = ", ".join(f"{k} {100 * v:.1f}%" for k, v in arm["init_stats_ff1"].items())
        lines += ["", f"Right after conversion (FF, one test batch): {stats or 'no statistics'}.", "",
                  "| fine-tuning epoch | test acc. (%) | train loss | seconds |", "| --- | --- | --- | --- |"]
        lines += [f"| {h['epoch']} | {_pct(h['test_acc'])} | {h['loss']:.4f} | {h['seconds']:.0f} |" for h in arm["snn_history"]]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    recipe = load_recipe(args.recipe, args.set)
    _check(recipe)
    if args.output:
        recipe["output"] = args.output
    torch.manual_seed(recipe["seed"])
    train, test = _loaders(recipe)
    command = "spikeforge hybrid " + " ".join([args.recipe, *[f"--set {s}" for s in args.set]])
    out = Path(recipe["output"])
    out.parent.mkdir(parents=True, exist_ok=True)
    arms: dict[str, dict] = {}
    for label, constrained in (ARMS[arm] for arm in recipe["arms"]):
        arms[label] = run_arm(recipe, constrained, train, test, lambda line: print(line, flush=True))
        out.write_text(render(recipe, arms, command))  # each finished arm is kept even if a later one is stopped
    print(out.read_text())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("hybrid", help="two-stage hybrid pipeline: constrained ANN → one-spike SNN → STDBP")
    parser.add_argument("recipe", help="recipe file or name in recipes/ (e.g. hybrid_fc2)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    parser.add_argument("--output", help="markdown file to write (default: the recipe's `output`)")
    parser.set_defaults(func=run)
