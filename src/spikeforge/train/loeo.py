"""Leave-one-engine-out: a speech recipe trained with the speakers of one synthesiser left out, then evaluated on them.

For each engine of `ROOT/speakers.csv`: train the recipe on ROOT with `dataset.exclude_engines: [engine]` (so its
training, validation and own test splits hold only the other engines' speakers), then evaluate the best checkpoint on
every clip of the left-out engine's speakers under TensorFlow's 12-class mix (`spikeforge eval RUN --data ROOT
--split all --engine ENGINE`). Keyword accuracy is the keyword recall there: the share of keyword clips named right.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

from spikeforge.data.speech_commands import speaker_table
from spikeforge.metrics.classification import balanced_accuracy, keyword_recall
from spikeforge.registry import METHODS
from spikeforge.train import runfolder
from spikeforge.train.atomic import atomic_write_text
from spikeforge.train.config import validate
from spikeforge.train.distributed import setup
from spikeforge.train.evaluate import evaluate
from spikeforge.train.heldout import dataset_at
from spikeforge.train.stages import trainer_for, trained_model
from spikeforge.train.trainer import build

TABLE = "loeo.md"


def engines_of(root: Path) -> list[str]:
    """The engines named in `root/speakers.csv`, sorted."""
    if not Path(root).is_dir():
        raise FileNotFoundError(f"{root} does not exist; give --data a Speech Commands folder with speakers.csv "
                                "(`spikeforge data speech-commands OUT` writes one)")
    table = speaker_table(root, "engine")
    if table is None:
        raise FileNotFoundError(f"{root} has no speakers.csv; leave-one-engine-out needs one with 'speaker' and 'engine' columns "
                                "(`spikeforge data speech-commands OUT` writes it)")
    engines = sorted(set(table[1].values()))
    if len(engines) < 2:
        raise ValueError(f"{root}/speakers.csv names {len(engines)} engine(s) ({', '.join(engines)}); leaving one out needs at least 2")
    return engines


def fold_recipe(config: dict, root: Path, engine: str) -> dict:
    """`config` trained on `root` without `engine`'s speakers."""
    if config["dataset"]["name"] != "speech_commands":
        raise ValueError(f"leave-one-engine-out needs a speech_commands recipe, got dataset {config['dataset']['name']!r}")
    fold = copy.deepcopy(config)
    fold["dataset"].update(root=str(root), exclude_engines=[engine])
    fold["name"] = f"{config['name']}-without-{engine}"
    return validate(fold)


def heldout_scores(run_dir: Path, root: Path, engine: str) -> dict:
    """TF-mix accuracy, balanced accuracy, keyword recall and spike rates of a run's best checkpoint on every clip of `engine`
    (features cached with the training's, beside the run folder)."""
    config, model, _ = trained_model(run_dir)
    data = dataset_at(config["dataset"], root, "all", "tf", [engine], runfolder.feature_cache(run_dir))
    ctx = setup(config["device"])
    result = evaluate(model.to(ctx.device), build(METHODS, config["method"]), data, config["encoder"], config["eval_batch_size"], ctx, detailed=True)
    return {"accuracy": result.accuracy, "balanced_accuracy": balanced_accuracy(result.confusion),
            "keyword_recall": keyword_recall(result.confusion, data.classes), "samples": result.samples, "spike_rates": result.spike_rates}


def loeo_table(rows: list[dict]) -> str:
    """Markdown: per left-out engine, the own test accuracy and the held-out scores, then the means."""
    lines = ["| left out | own test | own test spikes per layer (%) | held-out TF accuracy | balanced accuracy | keyword accuracy "
             "| held-out clips | held-out spikes per layer (%) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    pct = lambda v: f"{100 * v:.2f} %"  # noqa: E731
    rates = lambda d: " / ".join(f"{100 * v:.1f}" for v in d.values()) or "–"  # noqa: E731
    for r in rows:
        h = r["heldout"]
        lines.append(f"| {r['engine']} | {pct(r['own_test'])} | {rates(r['own_spike_rates'])} | {pct(h['accuracy'])} | "
                     f"{pct(h['balanced_accuracy'])} | {pct(h['keyword_recall'])} | {h['samples']} | {rates(h['spike_rates'])} |")
    if rows:
        mean = lambda f: pct(sum(f(r) for r in rows) / len(rows))  # noqa: E731
        lines.append(f"| mean | {mean(lambda r: r['own_test'])} | | {mean(lambda r: r['heldout']['accuracy'])} | "
                     f"{mean(lambda r: r['heldout']['balanced_accuracy'])} | {mean(lambda r: r['heldout']['keyword_recall'])} | | |")
    return "\n".join(lines) + "\n"


def leave_one_engine_out(config: dict, root: Path, out: Path, engines: list[str] | None = None,
                         log: Callable[[str], None] = print, progress_bar: bool = False) -> list[dict]:
    """Train and evaluate one fold per engine (default: every engine of `root`); run folders, feature cache and
    `out/loeo.md` (rewritten after each fold) all under `out`. Returns one row per fold."""
    known = engines_of(Path(root))
    engines = engines or known
    unknown = [e for e in engines if e not in known]
    if unknown:
        raise ValueError(f"--engines names {', '.join(map(repr, unknown))}, not an engine of {root}/speakers.csv (known: {', '.join(known)})")
    folds = [(e, fold_recipe(config, Path(root), e)) for e in engines]  # every fold checked first
    rows = []
    for engine, fold in folds:
        run_dir, trainer = runfolder.start_run(out, fold["name"], fold,
                                               lambda run, fold=fold: trainer_for(fold, run, log=log, progress_bar=progress_bar))
        log(f"[without {engine}] run folder: {run_dir}")
        metrics = trainer.fit()
        rows.append({"engine": engine, "run": str(run_dir), "own_test": metrics["accuracy"],
                     "own_spike_rates": metrics.get("spike_rates", {}), "heldout": heldout_scores(run_dir, Path(root), engine)})
        atomic_write_text(Path(out) / TABLE, f"Leave-one-engine-out of `{config['name']}` on {root}\n\n" + loeo_table(rows))
        log(f"[without {engine}] own test {100 * rows[-1]['own_test']:.2f} %, keyword accuracy on {engine} "
            f"{100 * rows[-1]['heldout']['keyword_recall']:.2f} %")
    return rows
