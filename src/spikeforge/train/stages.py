"""Recipes with stages: each stage is trained by the one Trainer into `RUN/stages/<stage>/`, a transition between them.

A stage folder is a complete run folder (its own config.yaml, metrics, checkpoints, plots). A stage is finished when
its metrics.json exists; `fit` skips finished stages and resumes the first unfinished one from its last checkpoint,
so a kill in any stage resumes in that stage. The next stage starts from the previous stage's best weights mapped by
the transition, whose data-dependent values are recorded in `RUN/stages/<stage>/transition.json` (with its report).
When every stage is done, the run folder itself gets the usual files: metrics.json (the last stage's test metrics,
plus a summary per stage), metrics.csv (every stage's epochs, numbered on), the plots, and a markdown page per
transition (`RUN/<transition>.md`, e.g. the conversion table of the hybrid paper).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from spikeforge.methods.base import StageData
from spikeforge.registry import MODELS, TRANSITIONS
from spikeforge.train import checkpoint, distributed, runfolder
from spikeforge.train.atomic import atomic_write_text
from spikeforge.train.config import stage_configs, validate
from spikeforge.train.report import write_plots
from spikeforge.train.trainer import Trainer, build

STAGES = "stages"
TRANSITION_RECORD = "transition.json"


def stage_dir(run: Path, name: str) -> Path:
    return Path(run) / STAGES / name


class Pipeline:
    """Trains the stages of `config` (a validated recipe with `stages`) into run folder `run` (None on ranks other than 0).

    `source` is the run folder being resumed, read by every rank (None for a new run): which stages are finished,
    their checkpoints, and the transitions already decided.
    """

    def __init__(self, config: dict, run: Path | None, log: Callable[[str], None] = print, progress_bar: bool = True,
                 source: Path | None = None) -> None:
        self.config, self.run, self.log, self.progress_bar = config, run, log, progress_bar
        self.source = Path(source) if source is not None else None
        self.stages = stage_configs(config)
        self.names = list(self.stages)
        self.ctx = distributed.Context(0, 1, torch.device("cpu"))  # the process group's, once `fit` joins it
        self._trained: dict[int, nn.Module] = {}  # stages trained in this process, with their best weights

    def model(self, index: int, data: StageData | None) -> nn.Module:
        """The starting model of stage `index`: the recipe's model, or the previous stage's best weights through the transition."""
        config = self.stages[self.names[index]]
        if index == 0:
            return build(MODELS, config["model"])
        previous = self._trained.get(index - 1)
        if previous is None:
            previous = self.model(index - 1, None)
            checkpoint.load_weights(checkpoint.resolve(stage_dir(self.source, self.names[index - 1]), "best"), previous)
        spec = config.get("transition")
        if spec is None:
            return previous
        return self._transition(index, build(TRANSITIONS, spec), previous, data)

    def _transition(self, index: int, transition, previous: nn.Module, data: StageData | None) -> nn.Module:
        name = self.names[index]
        record = stage_dir(self.source, name) / TRANSITION_RECORD if self.source is not None else None
        if record is not None and record.exists():
            return transition.apply(previous, json.loads(record.read_text())["decided"])
        if data is None:
            raise FileNotFoundError(f"stage {name!r} has no {TRANSITION_RECORD}; its transition has not run yet")
        decided = distributed.from_main(transition.decide(previous, data) if self.ctx.is_main else None, self.ctx)  # one decision for all ranks
        model = transition.apply(previous, decided)
        if self.run is not None:
            report = transition.report(previous, model, decided, data)
            atomic_write_text(stage_dir(self.run, name) / TRANSITION_RECORD,
                              json.dumps({"transition": self.stages[name]["transition"], "decided": decided, "report": report}, indent=1) + "\n")
        return model

    def fit(self) -> dict:
        """Train every unfinished stage in order, then write the run folder's own files; returns the run's metrics."""
        self.ctx = distributed.setup(self.config["device"])  # one process group for all stages (torchrun)
        finished = False
        try:
            metrics = self._finish(self._fit_stages())
            finished = True
            return metrics
        finally:
            distributed.teardown(self.ctx, finished)

    def _fit_stages(self) -> dict[str, dict]:
        source = {name: stage_dir(self.source, name) if self.source is not None else None for name in self.names}
        done = {name for name, folder in source.items() if folder is not None and (folder / runfolder.JSON).exists()}
        last = {name: folder / "checkpoints" / "last" for name, folder in source.items() if folder is not None and (folder / "checkpoints" / "last").exists()}
        results = {}
        for index, name in enumerate(self.names):
            if name in done:
                results[name] = runfolder.read_metrics(source[name])
                continue
            folder = stage_dir(self.run, name) if self.run is not None else None
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
                runfolder.write_config(folder, self.stages[name])
            if self.ctx.is_main:
                self.log(f"stage {index + 1}/{len(self.names)}: {name} ({self.stages[name]['method']['name']}, {self.stages[name]['epochs']} epochs)")
            trainer = Trainer(self.stages[name], folder, resume=last.get(name), log=self.log, progress_bar=self.progress_bar,
                              model_factory=lambda data, i=index: self.model(i, data),
                              feature_cache=runfolder.feature_cache(self.run) if self.run is not None else None)
            results[name] = trainer.fit()
            self._trained[index] = trainer.model.cpu()  # fit() left the best epoch's weights in it
        return results

    def _finish(self, results: dict[str, dict]) -> dict:
        final = results[self.names[-1]]
        metrics = {**final, "name": self.config["name"], "checkpoint": f"{self.names[-1]}: {final['checkpoint']}",
                   "wall_time_s": round(sum(r["wall_time_s"] for r in results.values()), 2),
                   "stages": {name: {k: r[k] for k in ("accuracy", "best_val_accuracy", "epochs", "steps", "wall_time_s")} for name, r in results.items()}}
        if self.run is None:
            return metrics
        rows, epochs = [], 0
        for number, name in enumerate(self.names, 1):
            for row in runfolder.read_history(stage_dir(self.run, name)):
                rows.append({"stage": number, **row, "epoch": epochs + row["epoch"]})
            epochs = rows[-1]["epoch"] if rows else epochs
        runfolder.write_history(self.run, rows)
        runfolder.write_metrics(self.run, metrics)
        sample = stage_dir(self.run, self.names[-1]) / runfolder.SAMPLE
        if sample.exists():
            shutil.copyfile(sample, self.run / runfolder.SAMPLE)
        write_plots(self.run)
        for name in self.names:
            spec = self.stages[name].get("transition")
            text = build(TRANSITIONS, spec).render(self.run) if spec is not None else ""
            if text:
                atomic_write_text(self.run / f"{spec['name']}.md", text)
                self.log(text)
        return metrics


def trainer_for(config: dict, run: Path | None, resume: Path | None = None, log: Callable[[str], None] = print,
                progress_bar: bool = True) -> Trainer | Pipeline:
    """What trains a validated recipe into `run` (`.fit()`): the Trainer for a plain recipe, the Pipeline of its stages
    for a staged one; `resume` is the run folder to continue (every rank reads it), None for a new run."""
    if "stages" in config:
        return Pipeline(config, run, log, progress_bar, source=resume)
    return Trainer(config, run, resume=Path(resume) / "checkpoints" / "last" if resume is not None else None, log=log, progress_bar=progress_bar)


def is_complete(run: Path, config: dict) -> bool:
    """Whether resuming `run` would change nothing: every stage finished (staged), or every epoch trained."""
    if "stages" in config:
        return (Path(run) / runfolder.JSON).exists()
    return runfolder.is_complete(run, config["epochs"])


def trained_model(run: Path, which: str = "best") -> tuple[dict, nn.Module, int]:
    """(flat recipe, model with the `which` checkpoint's weights, step) of the stage a run ends with (the run itself without stages)."""
    recipe = validate(runfolder.read_config(run))
    if "stages" not in recipe:
        config, folder, model = recipe, Path(run), build(MODELS, recipe["model"])
    else:
        pipeline = Pipeline(recipe, None, source=Path(run))
        config, folder = pipeline.stages[pipeline.names[-1]], stage_dir(run, pipeline.names[-1])
        model = pipeline.model(len(pipeline.names) - 1, None)
    step = checkpoint.load_weights(checkpoint.resolve(folder, which), model)
    return config, model, step
