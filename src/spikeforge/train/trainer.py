"""The training loop shared by every method: data, optimiser and schedule, checkpoints, resume, DDP, the run folder."""

from __future__ import annotations

import inspect
import math
import resource
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from spikeforge.methods.base import Method, StageData
from spikeforge.metrics.classification import class_metrics
from spikeforge.registry import DATASETS, METHODS, MODELS
from spikeforge.train import checkpoint, distributed, runfolder
from spikeforge.train.encode import encode, step_shape
from spikeforge.train.evaluate import Evaluation, evaluate
from spikeforge.train.optim import build_optimizer, sharpness_aware_gradient
from spikeforge.train.report import write_plots
from spikeforge.train.sampling import EpochBatchSampler, carve_validation, class_balancing_weights, labels_of
from spikeforge.train.schedule import learning_rate, set_learning_rate
from spikeforge.train.seeding import rng_state, seed_everything, set_rng_state


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(RuntimeError):
    """Ctrl-C (SIGINT) or SIGTERM: a checkpoint was saved and training stopped."""


@dataclass
class Progress:
    """Where training stands: the part of the trainer state that is not tensors."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    best_accuracy: float = -1.0
    best_epoch: int = -1
    wall_time: float = 0.0
    history: list[dict] = field(default_factory=list)
    totals: dict[str, float] = field(default_factory=dict)  # running sums of the current epoch


def dataset_kwargs(spec: dict, factory: Callable, feature_cache: Path | None) -> dict:
    """The factory's keyword arguments from a dataset section; `feature_cache` as its `cache_dir` where it caches features
    and the recipe names no `cache_dir` of its own."""
    kwargs = {k: v for k, v in spec.items() if k not in ("name", "val_fraction")}
    if feature_cache is not None and not kwargs.get("cache_dir") and "cache_dir" in inspect.signature(factory).parameters:
        kwargs["cache_dir"] = str(feature_cache)
    return kwargs


@contextmanager
def _named_dataset(spec: dict) -> Iterator[None]:
    """A missing dataset file or folder raised in the block is named with the recipe key that sets it."""
    try:
        yield
    except FileNotFoundError as err:
        raise FileNotFoundError(f"dataset {spec['name']!r}: {err} (set it with --set dataset.root=PATH)") from None


def build_datasets(spec: dict, seed: int, feature_cache: Path | None = None) -> tuple[Dataset, Dataset, Dataset]:
    """(train, validation, test) from the recipe's dataset section; validation is carved from train if asked. Features
    are cached in `feature_cache` (a training's: `runfolder.feature_cache`), else computed."""
    factory = DATASETS.get(spec["name"])
    kwargs = dataset_kwargs(spec, factory, feature_cache)
    with _named_dataset(spec):
        train = factory(split="train", **kwargs)
        if spec["val_fraction"] > 0:
            train, val = carve_validation(train, spec["val_fraction"], seed)
        else:
            val = factory(split="val", **kwargs)
        test = factory(split="test", **kwargs)
    return train, val, test


def build_split(spec: dict, seed: int, split: str) -> Dataset:
    """One split of `build_datasets` (features computed, no cache), building only that split unless it is carved from train."""
    if split == "test" or (split == "val" and not spec["val_fraction"] > 0):
        factory = DATASETS.get(spec["name"])
        with _named_dataset(spec):
            return factory(split=split, **dataset_kwargs(spec, factory, None))
    return dict(zip(("train", "val", "test"), build_datasets(spec, seed)))[split]


#: (dataset attribute, method weight that uses it, what the labels are for, the model key that goes with it)
_EXTRA_LABELS = (
    ("domains", "domain_adversary", "labels each training clip's domain for domain-adversarial training", "model.domain_classes"),
    ("phones", "phone_ctc", "gives each training clip its word's phones for the auxiliary phone loss", "model.phone_classes"),
    ("words", "word_loss", "gives each training clip its word's readout row", "model.unknown_words"),
)


def _check_labels(method: Method, train: Dataset) -> None:
    """No domain labels (`dataset.domains`), phones (`dataset.phones`) or words (`dataset.words`) in the training data unless the
    method uses them (the method itself says what it misses the other way round, at its first step). `train` may be carved from its dataset."""
    train = getattr(train, "dataset", train)
    for labels, weight, purpose, model_key in _EXTRA_LABELS:
        if getattr(train, labels, None) is not None and not getattr(method, weight, 0.0) > 0:
            raise ValueError(f"dataset.{labels} {purpose}; set method.{weight} > 0 (with {model_key}) or drop dataset.{labels}")


def build(registry, spec: dict):
    """Call the factory `spec["name"]` of `registry` with the rest of `spec` as keyword arguments."""
    return registry.get(spec["name"])(**{k: v for k, v in spec.items() if k != "name"})


class _StopSignal:
    """Turns SIGINT/SIGTERM into a flag checked after each step; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "_StopSignal":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def peak_memory_mb(device: torch.device) -> float:
    """Peak resident memory of this process (CPU) or peak allocated CUDA memory, in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Trainer:
    """Trains `config` (a validated recipe) into `run` (a run folder; None on ranks other than 0), its features cached in
    `feature_cache` (default: `runfolder.feature_cache(run)`, beside the run folder)."""

    def __init__(self, config: dict, run: Path | None, resume: Path | None = None, log: Callable[[str], None] = print, progress_bar: bool = True,
                 model_factory: Callable[[StageData], nn.Module] | None = None, feature_cache: Path | None = None) -> None:
        self.config, self.run, self.log_fn = config, run, log
        self.progress_bar = progress_bar
        self.ctx = distributed.setup(config["device"])
        seed_everything(config["seed"])
        if feature_cache is None and run is not None:
            feature_cache = runfolder.feature_cache(run)
        self.train_set, self.val_set, self.test_set = build_datasets(config["dataset"], config["seed"], feature_cache)
        # a stage of a staged recipe starts from the previous stage's model (spikeforge.train.stages)
        data = StageData(self.train_set, self.val_set, self.test_set, config["encoder"], config["eval_batch_size"])
        self._new_model = (lambda: model_factory(data)) if model_factory is not None else (lambda: build(MODELS, config["model"]))
        self.model = self._new_model().to(self.ctx.device)
        # the weights validated, tested and saved: an exponential moving average of the trained ones if ema_decay is set
        self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(config["ema_decay"]), use_buffers=True) if config["ema_decay"] is not None else None
        self.evaluated = self.ema.module if self.ema is not None else self.model
        self.method: Method = build(METHODS, config["method"])
        _check_labels(self.method, self.train_set)
        self.optimizer = build_optimizer(self.model.parameters(), config["optimizer"])
        self.state = Progress()
        self._best: dict[str, torch.Tensor] | None = None  # weights of the best epoch, on every rank
        weights = class_balancing_weights(labels_of(self.train_set)) if config["sampler"] == "weighted" else None
        self.sampler = EpochBatchSampler(len(self.train_set), config["batch_size"], config["seed"], weights, self.ctx.rank, self.ctx.world_size,
                                           self.method.views)
        self.steps_per_epoch = len(self.train_set) // config["batch_size"]
        if resume is not None:
            self._resume(resume)
        self.net = distributed.wrap(self.model, self.ctx)
        self.tb = runfolder.TensorBoard(run, purge_step=self.state.step or None) if run is not None else None

    def log(self, message: str) -> None:
        if self.ctx.is_main:
            self.log_fn(message)

    # -- checkpoints ---------------------------------------------------------------------------
    def _resume(self, path: Path) -> None:
        state = checkpoint.load_checkpoint(path, self.evaluated)
        if "trained_weights" in state:  # written with ema_decay: the file held the average, training goes on from these
            self.model.load_state_dict(state["trained_weights"])
        if self.ema is not None:
            if "trained_weights" not in state:
                raise ValueError(f"checkpoint {path} was written without ema_decay; resume it with ema_decay: null, or start a new run")
            self.ema.n_averaged.fill_(state["ema_averaged"])
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as err:
            raise ValueError(f"checkpoint {path}: optimiser state does not match the recipe's optimizer ({err})") from None
        best = checkpoint.resolve(path).parent / "best"
        if best.exists():
            copy = self._new_model()
            checkpoint.load_weights(best, copy)
            self._best = copy.state_dict()
        set_rng_state(state["rng"])  # last: building the copy above draws random numbers
        fields = {k: state[k] for k in ("step", "epoch", "batch", "best_accuracy", "best_epoch", "wall_time", "history", "totals")}
        self.state = Progress(**fields)
        self.log(f"resuming from step {self.state.step} (epoch {self.state.epoch + 1}, batch {self.state.batch})")

    def save(self, best: bool = False) -> Path | None:
        """Checkpoint the current step (rank 0 only): weights, optimiser, RNG, progress; update `last` (and `best`)."""
        if self.run is None:
            return None
        s = self.state
        payload = {"optimizer": self.optimizer.state_dict(), "rng": rng_state(), "epoch": s.epoch, "batch": s.batch,
                   "best_accuracy": s.best_accuracy, "best_epoch": s.best_epoch, "wall_time": s.wall_time + self._elapsed(),
                   "history": s.history, "totals": s.totals}
        if self.ema is not None:  # the file's weights are the averaged ones; training resumes from these
            payload |= {"trained_weights": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
                        "ema_averaged": int(self.ema.n_averaged)}
        links = ("last", "best") if best else ("last",)
        return checkpoint.save_checkpoint(self.run / "checkpoints", s.step, self.evaluated, payload, links)

    def _elapsed(self) -> float:
        return time.perf_counter() - self._t0

    # -- training ------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train the remaining epochs, evaluate the best checkpoint on the test split, write the run folder."""
        self._t0 = time.perf_counter()
        finished = False
        try:
            with _StopSignal() as stop:
                if self.config["validate_start"] and not self.state.history:
                    self._validate({})  # epoch 0: the starting model, so that training can only keep or improve on it
                while self.state.epoch < self.config["epochs"]:
                    self._epoch(stop)
            metrics = self.finish()
            finished = True
            return metrics
        finally:
            if self.tb is not None:
                self.tb.close()
            distributed.teardown(self.ctx, finished)

    def _loader(self) -> DataLoader:
        self.sampler.set_epoch(self.state.epoch, self.state.batch)
        return DataLoader(self.train_set, batch_sampler=self.sampler, generator=torch.Generator().manual_seed(0))

    def _epoch(self, stop: _StopSignal) -> None:
        cfg, s = self.config, self.state
        self.net.train()
        bar = tqdm(self._loader(), total=self.steps_per_epoch, initial=s.batch, desc=f"epoch {s.epoch + 1}/{cfg['epochs']}",
                   disable=(not self.ctx.is_main or not self.progress_bar) or None, leave=False, dynamic_ncols=True)
        for x, y, *labels in bar:  # a dataset with `domains` or `phones` adds each clip's other labels, by name
            self._step(x, y, **(labels[0] if labels else {}))
            t = s.totals
            bar.set_postfix(loss=f"{t['loss'] / t['n']:.3f}", acc=f"{t['correct'] / t['n']:.3f}", **({"rate": f"{t['rate'] / t['n']:.3f}"} if "rate" in t else {}))
            stopping = self._stop_requested(stop)
            if stopping or (cfg["checkpoint_every"] and s.step % cfg["checkpoint_every"] == 0):
                self.save()
            if stopping:
                bar.close()
                where = f"{self.run}/checkpoints/last" if self.run is not None else "rank 0's run folder"
                raise TrainingInterrupted(f"interrupted at step {s.step}; checkpoint saved to {where}; continue with --resume {self.run or ''}".rstrip())
        bar.close()
        self._end_epoch()

    def _step(self, x: torch.Tensor, y: torch.Tensor, **labels: torch.Tensor) -> None:
        cfg, s = self.config, self.state
        set_learning_rate(self.optimizer, learning_rate(cfg["schedule"], cfg["optimizer"]["lr"], s.step, self.steps_per_epoch))
        x, y = encode(x.to(self.ctx.device), cfg["encoder"]), y.to(self.ctx.device)
        self.method.set_progress(s.step / self.steps_per_epoch)
        labels = {name: value.to(self.ctx.device) for name, value in labels.items()}
        out = self.method.step(self.net, x, y, **labels)
        self._check_finite(out.loss, "loss is")
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        if cfg["optimizer"]["sam_rho"]:
            sharpness_aware_gradient(list(self.model.parameters()), cfg["optimizer"]["sam_rho"], lambda: self.method.step(self.net, x, y, **labels).loss)
        if cfg["grad_clip"] is not None:
            nn.utils.clip_grad_value_(self.model.parameters(), cfg["grad_clip"])  # low-activity paper §8: grads in [−5, 5]
        self.optimizer.step()
        self.method.after_step(self.model)  # β ∈ [0, 1], b ≥ 0 and the method's own constraints
        if self.ema is not None:
            self.ema.update_parameters(self.model)  # W_ema ← d·W_ema + (1 − d)·W; the first call copies W
        self._check_finite(torch.stack([p.detach().sum() for p in self.model.parameters()]).sum(), "the parameters are")
        n = y.shape[0]
        rate = [_mean(out.spike_rates) * n] if out.spike_rates else []  # a method without spikes (an ANN stage) reports no rate
        totals = torch.tensor([float(out.loss.detach()) * n, float((out.logits.argmax(-1) == y).sum()), n, *rate], dtype=torch.float64)
        totals = distributed.sum_across(totals, self.ctx).tolist()
        for key, value in zip(("loss", "correct", "n", "rate"), totals):
            s.totals[key] = s.totals.get(key, 0.0) + value
        for key, value in out.extras.items():  # the method's own numbers (this rank's), averaged over the epoch's batches that have them
            if math.isfinite(value):
                s.totals[f"sum/{key}"] = s.totals.get(f"sum/{key}", 0.0) + value * n
                s.totals[f"n/{key}"] = s.totals.get(f"n/{key}", 0.0) + n
        s.step += 1
        s.batch += 1
        if self.tb is not None:
            self.tb.scalars({"train/loss_step": totals[0] / totals[2], "train/lr": self.optimizer.param_groups[0]["lr"]}, s.step)

    def _check_finite(self, value: torch.Tensor, what: str) -> None:
        bad = torch.tensor([0.0 if torch.isfinite(value.detach()).all() else 1.0], dtype=torch.float64)
        if float(distributed.sum_across(bad, self.ctx)[0]) == 0.0:
            return
        s = self.state
        last = self.run / "checkpoints" / "last" if self.run is not None else None
        kept = f"the last good checkpoint is kept: {last.resolve()}" if last is not None and last.exists() else "no checkpoint had been written yet"
        raise TrainingDiverged(f"{what} {float(value.detach()):g} at step {s.step + 1} (epoch {s.epoch + 1}, batch {s.batch + 1}); training stopped; {kept}; "
                               "lower optimizer.lr or set grad_clip")

    def _stop_requested(self, stop: _StopSignal) -> bool:
        flag = torch.tensor([1.0 if stop.requested else 0.0], dtype=torch.float64)
        return float(distributed.sum_across(flag, self.ctx)[0]) > 0  # every rank stops at the same step

    def _end_epoch(self) -> None:
        t = self.state.totals
        extras = {f"train_{k[4:]}": t[k] / t[f"n/{k[4:]}"] for k in t if k.startswith("sum/")}
        self._validate({"train_loss": t["loss"] / t["n"], "train_acc": t["correct"] / t["n"], **({"train_rate": t["rate"] / t["n"]} if "rate" in t else {}),
                        **extras})

    def _validate(self, train: dict) -> None:
        """Close an epoch (epoch 0: the start, `train` empty): validate, record the row, keep the best weights, checkpoint."""
        s, start = self.state, not train
        distributed.broadcast_buffers(self.model, self.ctx)  # every rank validates, saves and tests rank 0's model
        val = evaluate(self.evaluated, self.method, self.val_set, self.config["encoder"], self.config["eval_batch_size"], self.ctx)
        epoch = s.epoch if start else s.epoch + 1
        row = {"epoch": epoch, "step": s.step, "lr": self.optimizer.param_groups[0]["lr"], **train,
               "val_loss": val.loss, "val_acc": val.accuracy, **{f"rate/{k}": v for k, v in val.spike_rates.items()},
               "time_s": round(s.wall_time + self._elapsed(), 3)}
        s.history.append(row)
        distributed.check_in_sync(self.model, self.ctx)
        improved = val.accuracy > s.best_accuracy
        if improved:
            s.best_accuracy, s.best_epoch = val.accuracy, epoch
            self._best = {k: v.detach().clone() for k, v in self.evaluated.state_dict().items()}
        if not start:
            s.epoch, s.batch, s.totals = s.epoch + 1, 0, {}
        rate = f" | mean spike rate {100 * _mean(val.spike_rates):.2f}%" if val.spike_rates else ""  # none without spikes
        fit = "start (before training)" if start else f"train loss {train['train_loss']:.4f} acc {100 * train['train_acc']:.2f}%"
        self.log(f"epoch {epoch}/{self.config['epochs']}: {fit} | val loss {val.loss:.4f} acc {100 * val.accuracy:.2f}%{rate}")
        if self.run is not None:
            runfolder.write_history(self.run, s.history)
            self.tb.scalars({k.replace("_", "/", 1) if k.startswith(("train_", "val_")) else k: v for k, v in row.items() if k not in ("epoch", "step")}, s.step)
        self.save(best=improved)

    # -- the end -------------------------------------------------------------------------------
    def finish(self) -> dict:
        """Test the best checkpoint: metrics.json, the recorded sample and the plots (rank 0)."""
        s = self.state
        wall = s.wall_time + self._elapsed()
        if self._best is not None:
            self.model.load_state_dict(self._best)
        test = evaluate(self.model, self.method, self.test_set, self.config["encoder"], self.config["eval_batch_size"], self.ctx, detailed=True)
        metrics = self._metrics(test, wall)
        if self.run is not None:
            runfolder.write_metrics(self.run, metrics)
            if test.sample is not None:
                runfolder.write_sample(self.run, *test.sample)
            write_plots(self.run)
        return metrics

    def _metrics(self, test: Evaluation, wall: float) -> dict:
        s = self.state
        hashes = distributed.rank_hashes(self.model, self.ctx)  # the weights tested, bit for bit on every rank
        return {
            "name": self.config["name"], "checkpoint": f"best (epoch {s.best_epoch})", "test_samples": test.samples,
            "accuracy": test.accuracy, "loss": test.loss, "spike_rates": test.spike_rates, "mean_spike_rate": _mean(test.spike_rates) if test.spike_rates else None,
            "synops_per_sample": sum(test.synops.values()), "synops_per_layer": test.synops, "accuracy_vs_time": test.accuracy_vs_time,
            "parameters": sum(p.numel() for p in self.model.parameters()), "best_val_accuracy": s.best_accuracy,
            "epochs": s.epoch, "steps": s.step, "wall_time_s": round(wall, 2),
            "peak_memory_mb": round(peak_memory_mb(self.ctx.device), 1), "world_size": self.ctx.world_size,
            "device": str(self.ctx.device), "ranks_in_sync": len(set(hashes)) == 1, "parameter_hashes": hashes,
            "data_report": self._data_report(), "input_shape": self._input_shape(),
            **class_metrics(test.confusion, getattr(self.test_set, "classes", None)),
        }

    def _input_shape(self) -> list[int]:
        """The network's input per sample and step, as the encoder gives it (what `spikeforge export` traces)."""
        return list(step_shape(self.test_set[0][0], self.config["encoder"]))

    def _data_report(self) -> dict:
        """What each split's loader reports about its files (e.g. skipped corrupt WAVs), where it reports any."""
        reports, seen = {}, set()
        for name, ds in (("train", self.train_set), ("val", self.val_set), ("test", self.test_set)):
            source = ds.dataset if isinstance(ds, Subset) else ds  # a carved validation split reports with "train"
            if getattr(source, "report", None) is not None and id(source) not in seen:
                reports[name] = source.report
                seen.add(id(source))
        return reports


def _mean(rates: dict[str, float]) -> float:
    return sum(rates.values()) / len(rates)
