"""`spikeforge eval RUN_DIR [--data ROOT]`: evaluate a run's checkpoint on a split (of its own data or another folder) and print the summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from spikeforge.data.speech_commands import speaker_groups
from spikeforge.metrics.classification import class_report, grouped_accuracy
from spikeforge.registry import METHODS
from spikeforge.train.distributed import setup
from spikeforge.train.evaluate import evaluate
from spikeforge.train.heldout import dataset_at
from spikeforge.train.stages import trained_model
from spikeforge.train.trainer import build, build_datasets


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run's checkpoint on the test (or validation) split, of its own data or of --data ROOT")
    p.add_argument("run_dir", type=Path, help="a run folder (runs/NAME-TIMESTAMP)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--split", choices=("test", "val", "train", "all"), default="test",
                   help="the split to evaluate (default test); all: every clip, for speakers the run never heard (speech)")
    p.add_argument("--data", type=Path, default=None, metavar="ROOT",
                   help="evaluate on another folder of the same layout (e.g. held-out speakers), features as in training")
    p.add_argument("--engine", action="append", default=None, metavar="NAME",
                   help="speech: only the speakers of this engine (speakers.csv; repeatable), e.g. the one a run left out")
    p.add_argument("--protocol", choices=("tf", "all"), default=None,
                   help="speech: TensorFlow's 12-class mix (all keywords, 10%% unknown, 10%% silence; default with --data, --engine or --split all) or every clip")
    p.add_argument("--group-by", default=None, metavar="COLUMN", help="speakers.csv column to group accuracy by (default: engine, else voice)")
    p.add_argument("--neurobench", action="store_true", help="print NeuroBench 2.3's static and workload metrics for the split instead (needs the [interop] extra)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config, model, step = trained_model(args.run_dir, args.checkpoint)  # the last stage's model for a staged recipe
    ctx = setup(config["device"])
    root = args.data
    if root is None and (args.engine or args.split == "all"):
        if "root" not in config["dataset"]:
            raise ValueError(f"--engine and --split all read a folder; dataset {config['dataset']['name']!r} has none")
        root = Path(config["dataset"]["root"])
    if root is not None:
        speech = config["dataset"]["name"] == "speech_commands"
        data = dataset_at(config["dataset"], root, args.split, args.protocol or ("tf" if speech else None), args.engine)
    else:
        if args.protocol is not None:
            if config["dataset"]["name"] != "speech_commands":
                raise ValueError(f"--protocol is the class mix of speech_commands; this run was trained on {config['dataset']['name']!r}")
            config["dataset"]["protocol"] = args.protocol
        data = dict(zip(("train", "val", "test"), build_datasets(config["dataset"], config["seed"])))[args.split]
    model = model.to(ctx.device)
    if args.neurobench:
        try:
            from spikeforge.integrations.neurobench import neurobench_table
        except ModuleNotFoundError as err:
            raise ValueError(str(err)) from None
        print(neurobench_table(model, build(METHODS, config["method"]), data, config["encoder"], config["eval_batch_size"]))
        return 0
    result = evaluate(model, build(METHODS, config["method"]), data, config["encoder"], config["eval_batch_size"], ctx, detailed=True)
    where = ("its own data" if root is None else str(root)) + (f", engine {', '.join(args.engine)}" if args.engine else "")
    print(f"{args.run_dir} ({args.checkpoint} checkpoint, step {step}) on the {args.split} split of {where}, {result.samples} samples")
    print(f"accuracy {100 * result.accuracy:.2f}%  loss {result.loss:.4f}  synaptic ops/sample {sum(result.synops.values()):.4g}")
    for name, rate in result.spike_rates.items():
        print(f"  spike rate {name}: {100 * rate:.2f}%")
    if result.confusion is not None and hasattr(data, "classes"):
        grouping = speaker_groups(data.root, data.sources, args.group_by) if hasattr(data, "sources") and ctx.world_size == 1 else None
        groups = None
        if grouping is not None:
            column, names = grouping
            groups = (column, grouped_accuracy(names, result.predictions == data.targets))
        print(class_report(result.confusion, data.classes, groups))
    return 0
