"""`spikeforge eval RUN_DIR [RUN_DIR ...] [--data ROOT]`: evaluate a run's checkpoint (or several runs' ensemble) on a split of its own data or another folder."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from spikeforge.data.speech_commands import speaker_groups
from spikeforge.metrics.classification import class_report, confusion_matrix, grouped_accuracy
from spikeforge.registry import METHODS
from spikeforge.train.distributed import setup
from spikeforge.train.evaluate import evaluate
from spikeforge.train.heldout import dataset_at
from spikeforge.train.stages import trained_model
from spikeforge.train.trainer import build, build_split


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run's checkpoint on the test (or validation) split, of its own data or of --data ROOT")
    p.add_argument("run_dir", type=Path, nargs="+",
                   help="a run folder (runs/NAME-TIMESTAMP); several: their ensemble, the mean of their softmax scores")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--split", choices=("test", "val", "train", "all"), default="test",
                   help="the split to evaluate (default test); all: every clip, for speakers the run never heard (speech)")
    p.add_argument("--data", type=Path, default=None, metavar="ROOT",
                   help="evaluate on another folder of the same layout (e.g. held-out speakers), features as in training")
    p.add_argument("--engine", action="append", default=None, metavar="NAME",
                   help="speech: only the speakers of this engine (speakers.csv; repeatable), e.g. the one a run left out")
    p.add_argument("--protocol", choices=("tf", "all"), default=None,
                   help="speech: TensorFlow's 12-class mix (all keywords, 10%% unknown, 10%% silence; default with --data, --engine or --split all) or every clip")
    p.add_argument("--group-by", default=None, metavar="COLUMN",
                   help="speakers.csv column to group accuracy by (default: engine, else voice), or a clips.csv column such as snr_band")
    p.add_argument("--neurobench", action="store_true", help="print NeuroBench 2.3's static and workload metrics for the split instead (needs the [interop] extra)")
    p.set_defaults(func=run)


def _split_of(args: argparse.Namespace, config: dict):
    """The dataset `args` asks for, features as in `config`'s training; and the folder it reads (None: the run's own data)."""
    root = args.data
    if root is None and (args.engine or args.split == "all"):
        if "root" not in config["dataset"]:
            raise ValueError(f"--engine and --split all read a folder; dataset {config['dataset']['name']!r} has none")
        root = Path(config["dataset"]["root"])
    if root is not None:
        speech = config["dataset"]["name"] == "speech_commands"
        return dataset_at(config["dataset"], root, args.split, args.protocol or ("tf" if speech else None), args.engine), root
    if args.protocol is not None:
        if config["dataset"]["name"] != "speech_commands":
            raise ValueError(f"--protocol is the class mix of speech_commands; this run was trained on {config['dataset']['name']!r}")
        config["dataset"]["protocol"] = args.protocol
    return build_split(config["dataset"], config["seed"], args.split), None


def _where(args: argparse.Namespace, root: Path | None) -> str:
    return ("its own data" if root is None else str(root)) + (f", engine {', '.join(args.engine)}" if args.engine else "")


def _groups(args: argparse.Namespace, data, correct: torch.Tensor, world_size: int):
    """(column, accuracy per group) where the data has a speaker table or a clip table with that column; else None."""
    grouping = speaker_groups(data.root, data.sources, args.group_by) if hasattr(data, "sources") and world_size == 1 else None
    if grouping is None:
        return None
    column, names = grouping
    return column, grouped_accuracy(names, correct)


def run(args: argparse.Namespace) -> int:
    if len(args.run_dir) > 1:
        return _run_ensemble(args)
    run_dir = args.run_dir[0]
    config, model, step = trained_model(run_dir, args.checkpoint)  # the last stage's model for a staged recipe
    ctx = setup(config["device"])
    data, root = _split_of(args, config)
    model = model.to(ctx.device)
    if args.neurobench:
        try:
            from spikeforge.integrations.neurobench import neurobench_table
        except ModuleNotFoundError as err:
            raise ValueError(str(err)) from None
        print(neurobench_table(model, build(METHODS, config["method"]), data, config["encoder"], config["eval_batch_size"]))
        return 0
    result = evaluate(model, build(METHODS, config["method"]), data, config["encoder"], config["eval_batch_size"], ctx, detailed=True)
    print(f"{run_dir} ({args.checkpoint} checkpoint, step {step}) on the {args.split} split of {_where(args, root)}, {result.samples} samples")
    print(f"accuracy {100 * result.accuracy:.2f}%  loss {result.loss:.4f}  synaptic ops/sample {sum(result.synops.values()):.4g}")
    for name, rate in result.spike_rates.items():
        print(f"  spike rate {name}: {100 * rate:.2f}%")
    if result.confusion is not None and hasattr(data, "classes"):
        print(class_report(result.confusion, data.classes, _groups(args, data, result.predictions == data.targets, ctx.world_size)))
    return 0


def _run_ensemble(args: argparse.Namespace) -> int:
    """Several runs as one classifier: the mean of their softmax scores, sample by sample, on the same samples."""
    if args.neurobench:
        raise ValueError("--neurobench measures one network; give one run folder")
    members, first = [], None
    for run_dir in args.run_dir:
        config, model, step = trained_model(run_dir, args.checkpoint)
        ctx = setup(config["device"])
        if ctx.world_size != 1:
            raise ValueError("an ensemble is evaluated in one process; run `spikeforge eval` without torchrun")
        data, root = _split_of(args, config)
        result = evaluate(model.to(ctx.device), build(METHODS, config["method"]), data, config["encoder"], config["eval_batch_size"], ctx, detailed=True)
        if result.scores is None:
            raise ValueError(f"{run_dir}: its method gives no class scores per sample to average")
        if first is None:
            first = (data, root, result.targets)
        elif not torch.equal(result.targets, first[2]):
            raise ValueError(f"{run_dir} sees other samples than {args.run_dir[0]} on this split (another dataset or class mix); "
                             "an ensemble needs runs evaluated on the same samples")
        members.append((run_dir, step, result))
    data, root, targets = first
    predicted = torch.stack([r.scores for _, _, r in members]).mean(0).argmax(-1)
    correct = predicted == targets
    print(f"ensemble of {len(members)} runs (the mean of their softmax scores; {args.checkpoint} checkpoints) on the {args.split} split "
          f"of {_where(args, root)}, {len(targets)} samples")
    for run_dir, step, r in members:
        rates = " / ".join(f"{100 * v:.2f}" for v in r.spike_rates.values())
        print(f"  {run_dir} (step {step}): accuracy {100 * r.accuracy:.2f}%  spike rates {rates} %")
    ops = sum(sum(r.synops.values()) for _, _, r in members)
    print(f"accuracy {100 * float(correct.double().mean()):.2f}%  synaptic ops/sample {ops:.4g} (all members)")
    if hasattr(data, "classes"):
        confusion = confusion_matrix(targets, predicted, len(data.classes))
        print(class_report(confusion, data.classes, _groups(args, data, correct, 1)))
    return 0
