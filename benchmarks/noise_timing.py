"""§3.2 of the noise-based faster SNN training paper: training time to a target accuracy, single-step vs direct T-step BPTT.

    python benchmarks/noise_timing.py noise_fmnist --target 0.84 --steps 10 --out /tmp/noise_timing \
        --set "model.channels=[32, 64, 64]" --set model.hidden=256 --set batch_size=64 --set optimizer.lr=1.0e-3

Both methods are trained by the harness's own Trainer step (`Trainer._step`: the same optimiser, schedule, clipping
and constraints as `spikeforge train`), in one process, from the same initial weights and in the same batch order,
taking turns in chunks of `--chunk` seconds so that both see the same machine load. After every `--eval-every`
seconds of a method's training time, its validation accuracy at T = `--steps` is measured (not counted as training
time). Training time is this process's CPU time by default (`--clock cpu`; equal to wall time on an idle core with
one thread) or wall time. Writes timing.md, timing.json and timing.png to `--out`.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Callable, Iterator

import torch
from matplotlib.figure import Figure
from torch.utils.data import DataLoader

from spikeforge.functional.noisy_lif import check_steps
from spikeforge.train.config import load_recipe
from spikeforge.train.encode import encode
from spikeforge.train.evaluate import evaluate
from spikeforge.train.trainer import Trainer

CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}


class Racer:
    """One method trained by a Trainer, with its training time on `clock` and on the wall (evaluation excluded)."""

    def __init__(self, name: str, trainer: Trainer, clock: Callable[[], float]) -> None:
        self.name, self.trainer, self.clock = name, trainer, clock
        self.train_s = self.wall_s = 0.0
        self.samples = 0
        self.curve: list[tuple[float, float, int, float]] = []
        self._batches = self._forever()

    def _forever(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield from self.trainer._loader()
            self.trainer.state.epoch, self.trainer.state.batch = self.trainer.state.epoch + 1, 0

    def warm_up(self) -> None:
        """One forward and backward pass on a copy of the model, so that compiling kernels is not timed as training."""
        t = self.trainer
        x, y = next(iter(t._loader()))
        t.method.step(copy.deepcopy(t.model).train(), encode(x, t.config["encoder"]), y).loss.backward()

    def train_for(self, seconds: float) -> None:
        """Trainer steps until `seconds` of training time on `clock` have passed."""
        self.trainer.net.train()
        start, wall = self.clock(), time.perf_counter()
        while self.clock() - start < seconds:
            x, y = next(self._batches)
            self.trainer._step(x, y)
            self.samples += y.shape[0]
        self.train_s += self.clock() - start
        self.wall_s += time.perf_counter() - wall

    def val_accuracy(self) -> float:
        t = self.trainer
        return evaluate(t.model, t.method, t.val_set, t.config["encoder"], t.config["eval_batch_size"], t.ctx).accuracy

    @torch.no_grad()
    def inference_seconds_per_sample(self, steps: int | None = None) -> float:
        """Seconds (on `clock`) per validation sample of a forward pass (at `steps`, default the method's own T)."""
        t = self.trainer
        t.model.eval()
        start, count = self.clock(), 0
        for x, _ in DataLoader(t.val_set, batch_size=100):
            x = encode(x, t.config["encoder"])
            t.method.predict(t.model, x) if steps is None else t.method.predict(t.model, x, steps=steps)
            count += x.shape[1]
        return (self.clock() - start) / count


def race(recipe: str, overrides: list[str], target: float, steps: int, eval_every: float, chunk: float, budget: float, clock: str) -> dict:
    """Train single-step (noise, converted to T = `steps` for validation) and direct T-step BPTT until both reach `target`."""
    if not 0 < target <= 1:
        raise ValueError(f"--target is a fraction in (0, 1], e.g. 0.85; got {target}")
    steps = check_steps(steps)
    if (name := load_recipe(recipe, overrides)["method"]["name"]) != "noise_single_step":
        raise ValueError(f"recipe {recipe!r} has method {name}: the race needs method noise_single_step (e.g. noise_fmnist)")
    single = load_recipe(recipe, [*overrides, f"method.eval_steps={steps}"])
    bptt = load_recipe(recipe, [*overrides, f"method={{name: noise_direct_bptt, steps: {steps}}}"])
    quiet = {"log": lambda _: None, "progress_bar": False}
    racers = [Racer("single-step + noise", Trainer(single, None, **quiet), CLOCKS[clock]),
              Racer(f"direct BPTT, T = {steps}", Trainer(bptt, None, **quiet), CLOCKS[clock])]
    for r in racers:
        r.warm_up()
    reached: dict[str, float | None] = {r.name: None for r in racers}
    started = time.perf_counter()
    while time.perf_counter() - started < budget and any(reached[r.name] is None for r in racers):
        for r in (r for r in racers if reached[r.name] is None):
            next_eval = (len(r.curve) + 1) * eval_every
            r.train_for(min(chunk, next_eval - r.train_s))
            if r.train_s >= next_eval:
                acc = r.val_accuracy()
                r.curve.append((round(r.train_s, 2), round(r.wall_s, 2), r.samples, acc))
                print(f"{r.name}: {r.train_s:7.1f} s training ({clock}), {r.wall_s:7.1f} s wall, {r.samples} samples, "
                      f"val acc at T = {steps}: {100 * acc:.2f}%", flush=True)
                if acc >= target:
                    reached[r.name] = r.train_s
    inference = {r.name: r.inference_seconds_per_sample() for r in racers}
    inference["single-step, T = 1"] = racers[0].inference_seconds_per_sample(steps=1)
    return {"recipe": single, "target": target, "steps": steps, "train_samples": len(racers[0].trainer.train_set),
            "val_samples": len(racers[0].trainer.val_set), "clock": clock, "eval_every_s": eval_every, "budget_s": budget,
            "threads": torch.get_num_threads(), "seconds_to_target": reached, "curves": {r.name: r.curve for r in racers},
            "inference_ms_per_sample": {k: 1000 * v for k, v in inference.items()}}


def write_report(result: dict, out: Path) -> str:
    """timing.md, timing.json and timing.png in `out`; returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    reached, clock = result["seconds_to_target"], result["clock"]
    single, bptt = list(reached)
    lines = [f"| method | training s ({clock}) to {100 * result['target']:.1f}% at T = {result['steps']} | wall s | samples seen | last val acc (%) |",
             "| --- | --- | --- | --- | --- |"]
    for name, curve in result["curves"].items():
        last = curve[-1] if curve else (0.0, 0.0, 0, float("nan"))
        when = f"{reached[name]:.1f}" if reached[name] is not None else f"not reached in {last[0]:.1f}"
        lines.append(f"| {name} | {when} | {last[1]:.1f} | {last[2]} | {100 * last[3]:.2f} |")
    if reached[single] is not None and reached[bptt] is not None:
        lines.append(f"\nsingle-step time / direct BPTT time = {reached[single] / reached[bptt]:.3f} (saving {100 * (1 - reached[single] / reached[bptt]):.1f}%)")
    elif reached[single] is not None and result["curves"][bptt]:
        lines.append(f"\ndirect BPTT did not reach the target; single-step time / BPTT time < {reached[single] / result['curves'][bptt][-1][0]:.3f}")
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", help="a noise_single_step recipe (name or YAML path), e.g. noise_fmnist")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key (repeatable)")
    p.add_argument("--target", type=float, required=True, help="validation accuracy to reach at T = --steps (a fraction, e.g. 0.85)")
    p.add_argument("--steps", type=int, default=10, help="T of the direct BPTT network and of the converted single-step one (default 10)")
    p.add_argument("--eval-every", type=float, default=20.0, help="evaluate after every this many seconds of each method's training (default 20)")
    p.add_argument("--chunk", type=float, default=5.0, help="the two methods take turns training this many seconds each (default 5)")
    p.add_argument("--budget", type=float, default=900.0, help="stop after this many wall-clock seconds in all (default 900)")
    p.add_argument("--clock", choices=tuple(CLOCKS), default="cpu", help="training time as this process's CPU time (default) or wall time")
    p.add_argument("--out", type=Path, required=True, help="folder for timing.md, .json, .png")
    args = p.parse_args(argv)
    result = race(args.recipe, args.overrides, args.target, args.steps, args.eval_every, args.chunk, args.budget, args.clock)
    print(write_report(result, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
