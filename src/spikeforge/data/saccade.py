"""Static images → NMNIST-format event files by three simulated saccades (Orchard et al. 2015, ref. [20] of the spikemax paper).

The 28×28 image sits in the 34×34 sensor field and moves along NMNIST's saccade triangle
(down-right, up-right, back left; `SACCADES`), one saccade per 100 ms, sampled every 1 ms
with bilinear interpolation. Each pixel is a DVS pixel: it keeps the log intensity
L = log(I + δ) at its last event and emits one ON (OFF) event for every contrast threshold
C that L rises (falls) past it, with a per-pixel threshold mismatch of σ_C. Event times are
the step in µs plus a uniform jitter within the step. Output layout: `OUT/Train|Test/<label>/NNNNN.bin`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from spikeforge.data.events import EVENT_DTYPE, NMNIST_SENSOR, write_nmnist
from spikeforge.data.idx import FASHION_MNIST_DEBIAN, load_idx_split
from spikeforge.data.output import add_arguments, dataset_folder

#: Displacement (dx, dy) in pixels of each saccade; they close the triangle like NMNIST's (3.5, 7), (3.5, −7), (−7, 0), scaled to fit 34×34.
SACCADES = ((3.0, 6.0), (3.0, -6.0), (-6.0, 0.0))
SACCADE_MS = 100


def saccade_path(steps_per_saccade: int = SACCADE_MS) -> np.ndarray:
    """Image offset (dx, dy) in pixels at every 1 ms step, `[3·steps_per_saccade, 2]`, starting at (0, 0)."""
    points, position = [], np.zeros(2)
    for move in SACCADES:
        frac = np.arange(1, steps_per_saccade + 1)[:, None] / steps_per_saccade
        points.append(position + frac * np.asarray(move))
        position = position + np.asarray(move)
    return np.concatenate([np.zeros((1, 2)), *points])[:-1]


def shifted_view(images: np.ndarray, dx: float, dy: float, sensor: int = NMNIST_SENSOR[0]) -> np.ndarray:
    """Intensity `[N, sensor, sensor]` seen when `images` `[N, h, w]` sit at (dx, dy) from the field's corner, bilinear."""
    n, h, w = images.shape
    canvas = np.zeros((n, sensor + 2, sensor + 2), dtype=np.float32)
    ix, iy = int(np.floor(dx)), int(np.floor(dy))
    fx, fy = dx - ix, dy - iy
    if not (0 <= ix and 0 <= iy and ix + w + 1 <= sensor + 2 and iy + h + 1 <= sensor + 2):
        raise ValueError(f"offset ({dx}, {dy}) moves a {h}×{w} image outside the {sensor}×{sensor} field")
    # bilinear: the image contributes to four integer placements with weights (1−f)(1−g), f(1−g), (1−f)g, fg
    for ox, oy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        if weight:
            canvas[:, iy + oy : iy + oy + h, ix + ox : ix + ox + w] += weight * images
    return canvas[:, :sensor, :sensor]


def saccade_events(images: np.ndarray, rng: np.random.Generator, threshold: float = 0.4, mismatch: float = 0.03, floor: float = 0.1) -> list[np.ndarray]:
    """Events (x, y, t µs, p) per image of `images` `[N, 28, 28]` in [0, 1] under three saccades with log-intensity change detection."""
    if not 0 < threshold:
        raise ValueError(f"contrast threshold must be > 0 (log-intensity units), got {threshold}")
    if images.ndim != 3 or images.min() < 0 or images.max() > 1:
        raise ValueError(f"images must be [N, H, W] intensities in [0, 1], got shape {images.shape}")
    n, h, w = images.shape
    start = (NMNIST_SENSOR[0] - w - 6) // 2  # room for the 6-pixel saccades
    path = saccade_path() + start
    thresh = np.maximum(threshold + mismatch * rng.standard_normal((n, *NMNIST_SENSOR[:2])), 0.05).astype(np.float32)
    reference = np.log(shifted_view(images, *path[0]) + floor)
    found: list[tuple[np.ndarray, ...]] = []
    for step, (dx, dy) in enumerate(path[1:], start=1):
        level = np.log(shifted_view(images, dx, dy) + floor)
        crossings = np.trunc((level - reference) / thresh)  # signed number of thresholds crossed
        reference += crossings * thresh
        sample, y, x = np.nonzero(crossings)
        count = np.abs(crossings[sample, y, x]).astype(np.int64)
        polarity = (crossings[sample, y, x] > 0).astype(np.int64)
        t = step * 1000 + rng.integers(0, 1000, size=int(count.sum()))
        found.append((*(np.repeat(a, count) for a in (sample, x, y)), t, np.repeat(polarity, count)))  # one event per threshold
    sample, x, y, t, p = (np.concatenate(parts) for parts in zip(*found))
    out = []
    for i in range(n):
        mask = sample == i
        ev = np.zeros(int(mask.sum()), EVENT_DTYPE)
        ev["x"], ev["y"], ev["t"], ev["p"] = x[mask], y[mask], t[mask], p[mask]
        out.append(np.sort(ev, order="t"))
    return out


def generate(out: str | os.PathLike, source: str | os.PathLike = FASHION_MNIST_DEBIAN, train: int = 3000, test: int = 1000, seed: int = 0, threshold: float = 0.4, chunk: int = 256) -> dict[str, int]:
    """Write `train` + `test` images of the IDX dataset at `source` as NMNIST files under `out`; returns files per split."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, folder, count in (("train", "Train", train), ("test", "Test", test)):
        images, labels = load_idx_split(source, split)
        if count > len(labels):
            raise ValueError(f"{source} has {len(labels)} {split} images, asked for {count}")
        order = np.sort(rng.permutation(len(labels))[:count])
        for first in range(0, count, chunk):
            idx = order[first : first + chunk]
            events = saccade_events(images[idx, 0].numpy(), rng, threshold)
            for k, ev in zip(idx, events):
                write_nmnist(Path(out) / folder / str(int(labels[k])) / f"{int(k):05d}.bin", ev)
        written[split] = count
    return written


def _run(args: argparse.Namespace) -> int:
    with dataset_folder(args.out, args.force, "saccade-events") as tmp:
        written = generate(tmp, args.source, args.train, args.test, args.seed, args.threshold)
    print(f"wrote {written['train']} train and {written['test']} test NMNIST-format files under {args.out}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """`spikeforge data saccade-events OUT`: Fashion-MNIST (or MNIST) → NMNIST-format event files."""
    p = subparsers.add_parser("saccade-events", help="static IDX images → NMNIST-format event files by three simulated saccades")
    add_arguments(p, "output folder (NMNIST layout Train|Test/<label>/*.bin)")
    p.add_argument("--source", default=str(FASHION_MNIST_DEBIAN), help="folder with the IDX files (default: Debian's Fashion-MNIST)")
    p.add_argument("--train", type=int, default=3000, help="number of training images to convert")
    p.add_argument("--test", type=int, default=1000, help="number of test images to convert")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threshold", type=float, default=0.4, help="contrast threshold C in log-intensity units")
    p.set_defaults(func=_run)
