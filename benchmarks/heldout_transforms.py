"""How much of a fold's held-out gap a transform of the test features closes: a trained leave-one-engine-out run,
evaluated on the engine it never heard with each clip's features warped in frequency, stretched in time, or shifted
to the training engines' band statistics, before the network sees them.

    python benchmarks/heldout_transforms.py RUN ENGINE [--warps 0.85 0.9 …] [--stretches 0.8 1.25 …] [--group-by voice] [--own]

RUN is a run folder of `spikeforge loeo` (or of `spikeforge train` with `dataset.exclude_engines`), ENGINE the engine
left out. The clips are read as `spikeforge eval RUN --split all --engine ENGINE` reads them (TensorFlow's class mix);
a transform touches the speech clips, not the silence ones. Prints a markdown table: TF accuracy and keyword accuracy
per transform (with `--group-by COLUMN`, the keyword accuracy of each group of speakers by that speakers.csv column
too). A transform that closes much of the gap points at what separates the engine from the others; one that closes it
for some voices only, at what those voices have that the training speakers lack.
The last rows choose a warp at test time, every clip warped (silence too, as a deployed model would have to): per
clip the most confident reading of a set of warps, the mean of their softmax, or per speaker the warp whose readings
are most confident on average (unsupervised vocal-tract length normalisation, with the speaker's unlabelled clips).
`--own` scores the fold's own test split (the other engines' test speakers, TF's mix) instead of the engine left out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from spikeforge.data.audio_features import band_centres
from spikeforge.data.augment import stretch_time, warp_bands
from spikeforge.data.speech_commands import CLASSES, KEYWORDS, features_of, speaker_of, speaker_table
from spikeforge.train.heldout import dataset_at
from spikeforge.train.stages import trained_model


def probabilities(model: torch.nn.Module, x: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """Softmax of `model`'s time-averaged scores `[N, classes]` on features `[N, T, C, F]`."""
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch].transpose(0, 1)).mean(0) for i in range(0, len(x), batch)]).softmax(1)


def scored(p: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy, keyword accuracy) of class probabilities `p` `[N, classes]` against labels `y`."""
    right = p.argmax(1) == y
    keyword = torch.tensor([CLASSES[int(c)] in KEYWORDS for c in y])
    return float(right.float().mean()), float(right[keyword].float().mean())


def accuracies(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy, keyword accuracy) of `model` on features `[N, T, C, F]` with labels `y`."""
    return scored(probabilities(model, x), y)


def most_confident(p: torch.Tensor) -> torch.Tensor:
    """Of readings `[W, N, classes]`, each clip's reading whose top probability is highest `[N, classes]`."""
    return p[p.max(2).values.argmax(0), torch.arange(p.shape[1])]


def band_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and deviation of each band `[F]` over clips, steps and channels of features `[N, T, C, F]`."""
    return x.mean((0, 1, 2)), x.std((0, 1, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("engine")
    parser.add_argument("--warps", type=float, nargs="*", default=[0.8, 0.85, 0.9, 0.95, 1.05, 1.1, 1.15, 1.2],
                        help="frequency scale factors (band k reads frequency centre_k / factor; < 1: the spectrum moves down)")
    parser.add_argument("--stretches", type=float, nargs="*", default=[0.8, 0.9, 1.1, 1.25],
                        help="time scale factors about the clip's middle step (> 1: longer)")
    parser.add_argument("--group-by", metavar="COLUMN", help="speakers.csv column (e.g. voice): keyword accuracy per group too")
    parser.add_argument("--own", action="store_true", help="score the fold's own test split instead of the engine left out")
    args = parser.parse_args()
    torch.set_num_threads(1)

    config, model, _ = trained_model(args.run, "best")
    model.eval()
    section = config["dataset"]
    root = Path(section["root"])
    engines = sorted(set(speaker_table(root, "engine")[1].values()) - {args.engine})
    held = dataset_at(section, root, "test", "tf", engines) if args.own else dataset_at(section, root, "all", "tf", [args.engine])
    seen = dataset_at(section, root, "train", "tf", engines)
    x, y = held.features, held.targets
    speech = torch.tensor([s is not None for s in held.sources])
    centres = band_centres(features_of(section))
    seen_mean, seen_std = band_statistics(seen.features)

    def on_speech(transform) -> torch.Tensor:
        out = x.clone()
        out[speech] = transform(x[speech])
        return out

    def per_speaker(transform) -> torch.Tensor:
        out = x.clone()
        speakers = [speaker_of(s) for s in held.sources]
        for name in {s for s, keep in zip(speakers, speech.tolist()) if keep}:
            rows = torch.tensor([s == name for s in speakers])
            out[rows] = transform(x[rows])
        return out

    def matched(v: torch.Tensor) -> torch.Tensor:
        """`v` with each band's mean and deviation over `v` moved to the training engines'."""
        mean, std = band_statistics(v)
        return (v - mean) / std * seen_std + seen_mean

    rows = [("none", x)]
    rows.append(("band statistics of the engine matched to the training engines'", on_speech(matched)))
    rows.append(("band statistics of each speaker matched to the training engines'", per_speaker(matched)))
    rows += [(f"frequency × {f}", on_speech(lambda v, f=f: warp_bands(v, f, centres))) for f in args.warps]
    rows += [(f"time × {s}", on_speech(lambda v, s=s: torch.stack([stretch_time(c, s) for c in v]))) for s in args.stretches]

    groups: dict[str, torch.Tensor] = {}
    if args.group_by:
        column = speaker_table(root, args.group_by)[1]
        of_clip = [column[speaker_of(s)] if s is not None else None for s in held.sources]
        groups = {g: torch.tensor([c == g for c in of_clip]) for g in sorted({c for c in of_clip if c is not None})}

    chosen = test_time_warps(model, x, args.warps, centres, [speaker_of(s) if s is not None else None for s in held.sources])
    print(f"{args.run}, {args.engine} left out{', own test' if args.own else ''}: {int(speech.sum())} speech and {int((~speech).sum())} silence clips\n")
    print("| transform of the held-out features | TF accuracy | keyword accuracy |" + "".join(f" {g} |" for g in groups))
    print("| --- | ---: | ---: |" + " ---: |" * len(groups))
    for name, features in rows:
        acc, keyword = accuracies(model, features, y)
        cells = "".join(f" {100 * accuracies(model, features[members], y[members])[1]:.1f} % |" for members in groups.values())
        print(f"| {name} | {100 * acc:.2f} % | {100 * keyword:.2f} % |{cells}")
    for name, p in chosen:
        acc, keyword = scored(p, y)
        print(f"| {name} | {100 * acc:.2f} % | {100 * keyword:.2f} % |" + " – |" * len(groups))


def test_time_warps(model: torch.nn.Module, x: torch.Tensor, warps: list[float], centres: torch.Tensor,
                    speakers: list[str | None]) -> list[tuple[str, torch.Tensor]]:
    """Class probabilities of the rules that choose a warp at test time, each clip (silence too) read at 1.0 and `warps`."""
    factors = sorted({1.0, *warps})
    p = torch.stack([probabilities(model, warp_bands(x, f, centres)) for f in factors])

    def within(lo: float, hi: float) -> list[int]:
        return [i for i, f in enumerate(factors) if lo - 1e-9 <= f <= hi + 1e-9]

    rows = [(f"most confident of {lo}–{hi}", most_confident(p[within(lo, hi)])) for lo, hi in ((0.8, 1.0), (0.9, 1.1))]
    rows.append(("mean of the softmax over 0.85–1.15", p[within(0.85, 1.15)].mean(0)))
    per_speaker = p[factors.index(1.0)].clone()
    for name in {s for s in speakers if s is not None}:
        rows_of = torch.tensor([s == name for s in speakers])
        per_speaker[rows_of] = p[int(p[:, rows_of].max(2).values.mean(1).argmax()), rows_of]
    rows.append((f"most confident warp per speaker, {factors[0]}–{factors[-1]}", per_speaker))
    return rows


if __name__ == "__main__":
    main()
