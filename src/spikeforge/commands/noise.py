"""`spikeforge noise ...`: the reports of the noise-based faster SNN training paper.

- `accuracy-vs-t RUN...`: test accuracy at T = 1, 2, 5, 10, 20 of trained single-step runs after
  conversion by step 2 ("ensemble"), step 3 ("accumulate") or the plain LIF ("lif") (Figs. 2, 5, 6).
- `sweep RECIPE`: trains the recipe's network with Gaussian, uniform and no noise, then the same table.
- `timing RECIPE`: §3.2 in one process: training wall time of single-step training and of direct
  T-step surrogate BPTT to reach the same validation accuracy at T steps, and inference time per sample.

Each writes a markdown table, a PNG and a JSON file to `--out`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from spikeforge.functional.noisy_lif import check_steps
from spikeforge.methods.noise_single_step import NoiseNetMethod, noise_direct_bptt, repeat_steps
from spikeforge.metrics.latency import correct_vs_time
from spikeforge.neurons.noisy import NoisyLIF, converted
from spikeforge.registry import DATASETS, METHODS, MODELS
from spikeforge.train import checkpoint, runfolder
from spikeforge.train.config import load_recipe, validate
from spikeforge.train.optim import build_optimizer
from spikeforge.train.seeding import seed_everything

STEPS = (1, 2, 5, 10, 20)
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
NOISES = ("gaussian", "uniform", "none")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("noise", help="noise-based single-step training: accuracy versus T, training-time comparison")
    noise_sub = parser.add_subparsers(dest="noise_command", required=True, metavar="REPORT")

    p = noise_sub.add_parser("accuracy-vs-t", help="test accuracy versus T of trained single-step runs")
    p.add_argument("runs", nargs="+", type=Path, help="run folders written by `spikeforge train` with method noise_single_step")
    p.add_argument("--out", type=Path, default=Path("runs/noise"), help="output folder (default runs/noise)")
    _eval_args(p)
    p.set_defaults(func=_accuracy_command)

    p = noise_sub.add_parser("sweep", help="train with Gaussian, uniform and no noise, then accuracy versus T")
    _recipe_args(p)
    p.add_argument("--noise", nargs="+", default=list(NOISES), choices=NOISES, help="noise kinds to train (default: all)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per model (default: the recipe's)")
    p.add_argument("--train-limit", type=int, default=None, help="train on the first N training samples")
    _eval_args(p)
    p.set_defaults(func=_sweep_command)

    p = noise_sub.add_parser("timing", help="§3.2: wall time to a target accuracy, single-step vs direct T-step BPTT")
    _recipe_args(p)
    p.add_argument("--target", type=float, required=True, help="validation accuracy to reach at T = --steps (a fraction, e.g. 0.85)")
    p.add_argument("--steps", type=int, default=10, help="T of the direct BPTT network and of the converted single-step one (default 10)")
    p.add_argument("--train-limit", type=int, default=None, help="train on the first N training samples (after the validation split)")
    p.add_argument("--val-size", type=int, default=1000, help="validation samples held out from the end of the training split (default 1000)")
    p.add_argument("--eval-every", type=float, default=20.0, help="evaluate after every this many seconds of training of each method (default 20)")
    p.add_argument("--budget", type=float, default=900.0, help="stop after this many wall-clock seconds of training and evaluation in all (default 900)")
    p.add_argument("--chunk", type=float, default=5.0, help="the two methods take turns training this many seconds each (default 5)")
    p.add_argument("--clock", choices=tuple(CLOCKS), default="cpu",
                   help="training time measured as this process's CPU time (default; equals wall time on an idle core with one thread) or wall time")
    p.set_defaults(func=_timing_command)


def _recipe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="a noise_single_step recipe (name in recipes/ or YAML path)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key (repeatable)")
    p.add_argument("--out", type=Path, default=Path("runs/noise"), help="output folder (default runs/noise)")


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, nargs="+", default=list(STEPS), help="values of T (default 1 2 5 10 20)")
    p.add_argument("--modes", nargs="+", default=["ensemble", "accumulate"], choices=("ensemble", "accumulate", "lif"), help="conversions to report")
    p.add_argument("--alpha", type=float, nargs="+", default=[4.0], help="α values of step 3, eq. (9) (default 4; 2: no residual noise; inf: step 2)")
    p.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N test samples")
    p.add_argument("--batch-size", type=int, default=100, help="evaluation batch size (default 100)")


def _check_eval_args(args: argparse.Namespace) -> None:
    for t in args.steps:
        check_steps(t)
    for alpha in args.alpha:
        if not alpha > 0:
            raise ValueError(f"--alpha must be > 0 (eq. (9) divides by α·max|Â|), got {alpha}")


# -- data and models -------------------------------------------------------------------------------
def _dataset(config: dict, split: str) -> Dataset:
    spec = config["dataset"]
    return DATASETS.get(spec["name"])(split=split, **{k: v for k, v in spec.items() if k not in ("name", "val_fraction")})


def _first(dataset: Dataset, n: int | None) -> Dataset:
    return dataset if n is None else Subset(dataset, range(min(n, len(dataset))))


def _build(config: dict, **model_overrides) -> tuple[nn.Module, NoiseNetMethod]:
    model = MODELS.get(config["model"]["name"])(**{**{k: v for k, v in config["model"].items() if k != "name"}, **model_overrides})
    method = METHODS.get(config["method"]["name"])(**{k: v for k, v in config["method"].items() if k != "name"})
    if not isinstance(method, NoiseNetMethod) or not any(isinstance(m, NoisyLIF) for m in model.modules()):
        raise ValueError(f"recipe {config['name']!r}: `spikeforge noise` needs method noise_single_step and a model of NoisyLIF neurons (e.g. noise_cnn)")
    return model, method


def _noise_label(noise: str) -> str:
    return "no noise" if noise == "none" else f"{noise} noise"


def _static(x: torch.Tensor) -> torch.Tensor:
    """A batch of static samples `[B, ...]` as one time step `[1, B, ...]` (direct encoding)."""
    return x.unsqueeze(0)


# -- accuracy versus T -------------------------------------------------------------------------------
@torch.no_grad()
def accuracy_vs_steps(model: nn.Module, loader: DataLoader, steps: list[int], mode: str, alpha: float) -> dict[int, float]:
    """Accuracy after T steps for each T in `steps`, from one run at max(steps) (the network is causal)."""
    model.eval()
    t_max = max(check_steps(t) for t in steps)
    correct, count = torch.zeros(t_max, dtype=torch.float64), 0
    with converted(model, mode=mode, alpha=alpha):
        for x, y in loader:
            outputs = model(repeat_steps(_static(x), t_max))
            correct += correct_vs_time(outputs, y, model.output_reduction).double()
            count += y.shape[0]
    return {t: float(correct[t - 1] / count) for t in steps}


def _rows_for(label: str, model: nn.Module, loader: DataLoader, steps: list[int], modes: list[str], alphas: list[float]) -> tuple[list[dict], list[str]]:
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


def _write_accuracy_report(rows: list[dict], notes: list[str], steps: list[int], out: Path, extra: dict) -> str:
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


def _accuracy_command(args: argparse.Namespace) -> int:
    _check_eval_args(args)
    rows, notes = [], []
    for run in args.runs:
        config = validate(runfolder.read_config(run))
        model, _ = _build(config)
        checkpoint.load_weights(checkpoint.resolve(run, "best" if (run / "checkpoints" / "best").exists() else "last"), model)
        loader = DataLoader(_first(_dataset(config, "test"), args.test_limit), batch_size=args.batch_size)
        label = f"{_noise_label(config['model'].get('noise', 'gaussian'))} ({run.name})"
        r, n = _rows_for(label, model, loader, args.steps, args.modes, args.alpha)
        rows, notes = rows + r, notes + n
    print(_write_accuracy_report(rows, notes, args.steps, args.out, {"runs": [str(r) for r in args.runs]}))
    print(f"wrote {args.out}/accuracy_vs_t.md, .png, .json")
    return 0


# -- training loops shared by sweep and timing --------------------------------------------------------
@dataclass
class _Learner:
    """One model being trained by one method, with its training time on `clock` and on the wall (evaluation excluded)."""

    name: str
    model: nn.Module
    method: NoiseNetMethod
    optimizer: torch.optim.Optimizer
    loader: DataLoader
    clock: Callable[[], float] = time.process_time
    train_s: float = 0.0
    wall_s: float = 0.0
    samples: int = 0
    curve: list[tuple[float, float, int, float]] = field(default_factory=list)
    _batches: object = None

    def _next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._batches is None:
            self._batches = iter(self.loader)
        try:
            return next(self._batches)
        except StopIteration:
            self._batches = iter(self.loader)
            return next(self._batches)

    def train_for(self, seconds: float, max_batches: int | None = None) -> None:
        """Train until `seconds` of training time on `clock` have passed (or `max_batches` batches)."""
        self.model.train()
        start, wall, done = self.clock(), time.perf_counter(), 0
        while self.clock() - start < seconds and (max_batches is None or done < max_batches):
            x, y = self._next()
            out = self.method.step(self.model, _static(x), y)
            self.optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            self.optimizer.step()
            self.samples += y.shape[0]
            done += 1
        self.train_s += self.clock() - start
        self.wall_s += time.perf_counter() - wall


def _learner(name: str, config: dict, method: NoiseNetMethod, train: Dataset, clock: str = "cpu", **model_overrides) -> _Learner:
    seed_everything(config["seed"])
    model, _ = _build(config, **model_overrides)
    loader = DataLoader(train, batch_size=config["batch_size"], shuffle=True, generator=torch.Generator().manual_seed(config["seed"]))
    return _Learner(name, model, method, build_optimizer(model.parameters(), config["optimizer"]), loader, CLOCKS[clock])


def _sweep_command(args: argparse.Namespace) -> int:
    _check_eval_args(args)
    config = load_recipe(args.recipe, args.overrides)
    epochs = config["epochs"] if args.epochs is None else args.epochs
    train = _first(_dataset(config, "train"), args.train_limit)
    test = DataLoader(_first(_dataset(config, "test"), args.test_limit), batch_size=args.batch_size)
    _, method = _build(config)
    rows, notes, times = [], [], {}
    for noise in args.noise:
        learner = _learner(noise, config, method, train, noise=noise)
        learner.train_for(math.inf, max_batches=epochs * len(learner.loader))
        times[noise] = {"cpu_s": round(learner.train_s, 1), "wall_s": round(learner.wall_s, 1)}
        print(f"{noise}: trained {epochs} epoch(s) on {len(train)} samples in {learner.train_s:.1f} s CPU ({learner.wall_s:.1f} s wall)", flush=True)
        modes = [m for m in args.modes if not (noise == "none" and m == "accumulate")] + (["lif"] if noise == "none" and "lif" not in args.modes else [])
        r, n = _rows_for(_noise_label(noise), learner.model, test, args.steps, modes, args.alpha)
        rows, notes = rows + r, notes + n
    extra = {"recipe": config, "epochs": epochs, "train_samples": len(train), "test_samples": len(test.dataset), "train_seconds": times}
    print(_write_accuracy_report(rows, notes, args.steps, args.out, extra))
    print(f"wrote {args.out}/accuracy_vs_t.md, .png, .json")
    return 0


# -- §3.2 timing -----------------------------------------------------------------------------------------
@torch.no_grad()
def _val_accuracy(learner: _Learner, loader: DataLoader, steps: int) -> float:
    learner.model.eval()
    correct = count = 0
    for x, y in loader:
        logits = learner.method.predict(learner.model, _static(x), steps=steps).mean(0)
        correct += int((logits.argmax(1) == y).sum())
        count += y.shape[0]
    return correct / count


@torch.no_grad()
def _inference_seconds_per_sample(learner: _Learner, loader: DataLoader, steps: int) -> float:
    """Seconds (on the learner's clock) per sample of a forward pass at `steps` steps."""
    learner.model.eval()
    start, count = learner.clock(), 0
    for x, _ in loader:
        learner.method.predict(learner.model, _static(x), steps=steps)
        count += x.shape[0]
    return (learner.clock() - start) / count


def _timing_command(args: argparse.Namespace) -> int:
    config = load_recipe(args.recipe, args.overrides)
    if not 0 < args.target <= 1:
        raise ValueError(f"--target is a fraction in (0, 1], e.g. 0.85; got {args.target}")
    steps = check_steps(args.steps)
    full = _dataset(config, "train")
    if args.val_size >= len(full):
        raise ValueError(f"--val-size {args.val_size} leaves no training data out of {len(full)} samples")
    val = DataLoader(Subset(full, range(len(full) - args.val_size, len(full))), batch_size=100)
    train = Subset(full, range(min(len(full) - args.val_size, args.train_limit or len(full))))
    _, single_method = _build(config)
    single_method = NoiseNetMethod("ensemble", 1, single_method.eval_mode, steps, single_method.alpha)
    learners = [_learner("single-step + noise", config, single_method, train, args.clock),
                _learner(f"direct BPTT, T = {steps}", config, noise_direct_bptt(steps), train, args.clock)]
    reached: dict[str, float | None] = {ln.name: None for ln in learners}
    started = time.perf_counter()
    while time.perf_counter() - started < args.budget and any(reached[ln.name] is None for ln in learners):
        for ln in (ln for ln in learners if reached[ln.name] is None):
            next_eval = (len(ln.curve) + 1) * args.eval_every
            ln.train_for(min(args.chunk, next_eval - ln.train_s))
            if ln.train_s >= next_eval:
                acc = _val_accuracy(ln, val, steps)
                ln.curve.append((round(ln.train_s, 2), round(ln.wall_s, 2), ln.samples, acc))
                print(f"{ln.name}: {ln.train_s:7.1f} s training ({args.clock}), {ln.wall_s:7.1f} s wall, {ln.samples} samples, "
                      f"val acc at T = {steps}: {100 * acc:.2f}%", flush=True)
                if acc >= args.target:
                    reached[ln.name] = ln.train_s
    inference = {ln.name: _inference_seconds_per_sample(ln, val, steps) for ln in learners}
    inference["single-step, T = 1"] = _inference_seconds_per_sample(learners[0], val, 1)
    result = {"recipe": config, "target": args.target, "steps": steps, "train_samples": len(train), "val_samples": args.val_size,
              "clock": args.clock, "eval_every_s": args.eval_every, "budget_s": args.budget, "threads": torch.get_num_threads(),
              "seconds_to_target": reached, "curves": {ln.name: ln.curve for ln in learners},
              "inference_ms_per_sample": {k: 1000 * v for k, v in inference.items()}}
    print(_write_timing_report(result, args.out))
    return 0


def _write_timing_report(result: dict, out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    reached = result["seconds_to_target"]
    single, bptt = list(reached)
    clock = result["clock"]
    lines = [f"| method | training s ({clock}) to {100 * result['target']:.1f}% at T = {result['steps']} | wall s | samples seen | last val acc (%) |",
             "| --- | --- | --- | --- | --- |"]
    for name, curve in result["curves"].items():
        last = curve[-1] if curve else (0.0, 0.0, 0, float("nan"))
        when = f"{reached[name]:.1f}" if reached[name] is not None else f"not reached in {last[0]:.1f}"
        lines.append(f"| {name} | {when} | {last[1]:.1f} | {last[2]} | {100 * last[3]:.2f} |")
    if reached[single] is not None and reached[bptt] is not None:
        lines.append(f"\nsingle-step time / direct BPTT time = {reached[single] / reached[bptt]:.3f} (saving {100 * (1 - reached[single] / reached[bptt]):.1f}%)")
    elif reached[single] is not None and result["curves"][bptt]:
        bound = reached[single] / result["curves"][bptt][-1][0]
        lines.append(f"\ndirect BPTT did not reach the target; single-step time / BPTT time < {bound:.3f}")
    lines.append(f"\n| inference | ms per sample ({clock}) |\n| --- | --- |")
    lines += [f"| {k} | {v:.3f} |" for k, v in result["inference_ms_per_sample"].items()]
    table = "\n".join(lines)
    (out / "timing.md").write_text(table + "\n")
    (out / "timing.json").write_text(json.dumps(result, indent=2) + "\n")
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for name, curve in result["curves"].items():
        ax.plot([c[0] for c in curve], [100 * c[3] for c in curve], "-o", label=name)
    ax.axhline(100 * result["target"], color="gray", ls=":", label="target")
    ax.set(xlabel=f"training time, {clock} (s)", ylabel=f"validation accuracy at T = {result['steps']} (%)", title="§3.2: training time to a target accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "timing.png", dpi=110)
    return table
