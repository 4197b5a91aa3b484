"""Event-camera and silicon-cochlea datasets in their on-disk formats, binned into ON/OFF frames.

- NMNIST (Orchard et al. 2015): one binary file per sample, 40 bits per event (x: 8, y: 8,
  polarity: 1, time: 23 µs), folders `Train|Test/<digit>/*.bin`; parsed with `tonic`.
- DVS Gesture (Amir et al. 2017): AEDAT 3.1 recordings `userNN_<lighting>.aedat` with
  `userNN_<lighting>_labels.csv` (class, start µs, end µs) and `trials_to_train.txt` /
  `trials_to_test.txt`. (tonic's AEDAT 3 reader ignores packet types and overflow, so the
  packets are parsed here.)
- N-TIDIGITS18 (Anumula et al. 2018): one HDF5 file with `{split}_labels`,
  `{split}_addresses/<id>` (channel 0–63) and `{split}_timestamps/<id>` (seconds).

Sensor sizes are (width, height, polarities), as in tonic. Frames are `[T, P, H, W]` spike
counts per bin (default 1 ms), the spikemax paper's 1 ms sampling. The bins start at t = 0 of
the sample (`origin="zero"`, the default) or at its first event (`origin="first_event"`, what
`tonic.transforms.ToFrame(sensor_size, time_window=bin_us)` does: the same frames, tested). Every
dataset takes tonic-style `transform=` (applied to the event array; if it returns frames, e.g.
`tonic.transforms.ToFrame`, they are the sample) and `target_transform=`.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from spikeforge.registry import DATASETS

EVENT_DTYPE = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])
NMNIST_SENSOR = (34, 34, 2)
GESTURE_SENSOR = (128, 128, 2)
NTIDIGITS_SENSOR = (64, 1, 1)
NTIDIGITS_CLASSES = {"o": 0, "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6, "7": 7, "8": 8, "9": 9, "z": 10}
_NMNIST_MAX_T = 2**23  # 23-bit timestamps
_NMNIST_FOLDERS = {"train": "Train", "test": "Test"}
ORIGINS = ("zero", "first_event")


def check_in_sensor(events: np.ndarray, sensor_size: tuple[int, int, int], source: str | os.PathLike) -> None:
    """Raise ValueError naming `source` if any event lies outside `sensor_size` (width, height, polarities)."""
    for axis, limit in zip(("x", "y", "p"), sensor_size):
        values = events[axis]
        if values.size and (values.min() < 0 or values.max() >= limit):
            raise ValueError(
                f"{source}: event {axis} = {int(values.max()) if values.max() >= limit else int(values.min())} lies outside "
                f"the sensor size {sensor_size} (width, height, polarities); wrong dataset or sensor_size?"
            )


def read_nmnist(path: str | os.PathLike, sensor_size: tuple[int, int, int] = NMNIST_SENSOR) -> np.ndarray:
    """Events (x, y, t µs, p) of one NMNIST `.bin` file (40-bit events), checked against the sensor size."""
    from tonic.io import read_mnist_file

    path = Path(path)
    check_nmnist_size(path)
    events = read_mnist_file(str(path), dtype=EVENT_DTYPE)
    check_in_sensor(events, sensor_size, path)
    return events


def check_nmnist_size(path: Path) -> None:
    """Raise ValueError naming `path` if it holds no events or not a whole number of 5-byte events."""
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path}: empty NMNIST file (0 events)")
    if size % 5:
        raise ValueError(f"{path}: truncated or corrupt NMNIST file: {size} bytes is not a whole number of 5-byte events")


def write_nmnist(path: str | os.PathLike, events: np.ndarray) -> None:
    """Write events (x, y, t µs, p) as an NMNIST `.bin` file: bytes x, y, then p·2²³ + t in 3 big-endian bytes."""
    if events.size and (events["t"].min() < 0 or events["t"].max() >= _NMNIST_MAX_T):
        raise ValueError(f"{path}: NMNIST timestamps must lie in [0, 2^23) µs, got up to {int(events['t'].max())}")
    if events.size and (min(events["x"].min(), events["y"].min()) < 0 or max(events["x"].max(), events["y"].max()) > 255 or events["p"].max() > 1):
        raise ValueError(f"{path}: NMNIST events need 0 ≤ x, y ≤ 255 and p in {{0, 1}}")
    word = (events["p"].astype(np.uint32) << 23) | events["t"].astype(np.uint32)
    raw = np.stack(
        [events["x"], events["y"], (word >> 16) & 0xFF, (word >> 8) & 0xFF, word & 0xFF], axis=1
    ).astype(np.uint8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    raw.tofile(path)


def check_origin(origin: str) -> str:
    """`origin` if it names a binning origin, else a one-line ValueError."""
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS} (bins from t = 0 of the sample, or from its first event as tonic's ToFrame), got {origin!r}")
    return origin


def events_to_frames(events: np.ndarray, sensor_size: tuple[int, int, int], steps: int, bin_us: int = 1000, start_us: int = 0,
                     origin: str = "zero") -> torch.Tensor:
    """Spike counts `[steps, P, H, W]` in bins [a, a + bin_us) µs; later events are dropped.

    The first bin starts at `start_us` (`origin="zero"`) or at the first event at or after it
    (`origin="first_event"`, tonic's `ToFrame` default).
    """
    if steps < 1 or bin_us < 1:
        raise ValueError(f"steps and bin_us must be ≥ 1, got steps={steps}, bin_us={bin_us}")
    check_origin(origin)
    width, height, pols = sensor_size
    check_in_sensor(events, sensor_size, "events")
    if origin == "first_event":
        later = events["t"][events["t"] >= start_us]
        start_us = int(later[0]) if later.size else start_us
    step = (events["t"] - start_us) // bin_us
    keep = (step >= 0) & (step < steps)
    flat = ((step[keep] * pols + events["p"][keep]) * height + events["y"][keep]) * width + events["x"][keep]
    counts = np.bincount(flat, minlength=steps * pols * height * width)
    return torch.from_numpy(counts.astype(np.float32)).view(steps, pols, height, width)


class _EventSamples(Dataset):
    """What the event datasets share: binning options and tonic-style transforms."""

    def _binning(self, steps: int, bin_us: int, origin: str, transform, target_transform) -> None:
        if origin not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS} (bins from t = 0 of the sample, or from its first event as tonic's ToFrame), got {origin!r}")
        self.steps, self.bin_us, self.origin = steps, bin_us, origin
        self.transform, self.target_transform = transform, target_transform

    def _sample(self, events: np.ndarray, label: int, sensor_size: tuple[int, int, int], start_us: int = 0) -> tuple[torch.Tensor, int]:
        """(frames, label) of one sample's events, through `transform` first when there is one."""
        if self.transform is not None:
            events = self.transform(events.copy())
            if events.dtype.names is None:  # the transform binned the events itself (e.g. tonic's ToFrame)
                return torch.as_tensor(np.asarray(events), dtype=torch.float32), self._target(label)
        return events_to_frames(events, sensor_size, self.steps, self.bin_us, start_us, self.origin), self._target(label)

    def _target(self, label: int):
        return label if self.target_transform is None else self.target_transform(label)


class NMNISTFolder(_EventSamples):
    """NMNIST-layout folder `root/Train|Test/<digit>/*.bin` → (frames `[T, 2, 34, 34]`, label)."""

    def __init__(self, root: str | os.PathLike, split: str = "train", steps: int = 300, bin_us: int = 1000, limit: int | None = None,
                 origin: str = "zero", transform=None, target_transform=None) -> None:
        self._binning(steps, bin_us, origin, transform, target_transform)
        if split not in _NMNIST_FOLDERS:
            raise ValueError(f"NMNIST has splits 'train' and 'test', got {split!r}; a validation split is carved with dataset.val_fraction")
        folder = Path(root) / _NMNIST_FOLDERS[split]
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} does not exist; expected the NMNIST layout root/Train|Test/<digit>/*.bin (generate one with `spikeforge data saccade-events OUT`)")
        found = sorted(folder.glob("[0-9]/*.bin"))
        if not found:
            raise FileNotFoundError(f"{folder} holds no <digit>/*.bin files (NMNIST layout)")
        files, skipped = [], []
        for path in found:
            try:
                check_nmnist_size(path)
                files.append(path)
            except ValueError as err:
                skipped.append(str(err))
        self.report = {"files": len(found), "skipped": len(skipped), "skipped_files": skipped}
        if skipped:
            warnings.warn(f"{folder}: {len(skipped)} empty or truncated event files skipped (listed in metrics.json data_report)", stacklevel=2)
        if not files:
            raise ValueError(f"{folder}: every one of its {len(found)} event files is empty or truncated")
        if limit is not None:
            files = files[:: max(1, len(files) // limit)][:limit]  # every k-th file keeps all classes
        self.files = files
        self.targets = [int(f.parent.name) for f in files]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self._sample(read_nmnist(self.files[index]), self.targets[index], NMNIST_SENSOR)


@DATASETS.register("nmnist")
def nmnist(root: str | os.PathLike, split: str = "train", steps: int = 300, bin_us: int = 1000, limit: int | None = None,
           origin: str = "zero", transform=None, target_transform=None) -> NMNISTFolder:
    """NMNIST (or `spikeforge data saccade-events` output) binned to `[steps, 2, 34, 34]` frames."""
    return NMNISTFolder(root, split, steps, bin_us, limit, origin, transform, target_transform)


def read_aedat31(path: str | os.PathLike) -> np.ndarray:
    """Polarity events (x, y, t µs, p) of an AEDAT 3.1 file (DVS Gesture); other packet types are skipped."""
    path = Path(path)
    raw = path.read_bytes()
    if not raw.startswith(b"#!AER-DAT3.1"):
        raise ValueError(f"{path}: not an AEDAT 3.1 file (first line {raw[:20]!r}, expected '#!AER-DAT3.1')")
    end = raw.find(b"#!END-HEADER")
    if end < 0:
        raise ValueError(f"{path}: corrupt AEDAT 3.1 file: no '#!END-HEADER' line")
    pos = raw.index(b"\n", end) + 1
    header = np.dtype([("type", "<i2"), ("source", "<i2"), ("size", "<i4"), ("ts_offset", "<i4"), ("ts_overflow", "<i4"),
                       ("capacity", "<i4"), ("number", "<i4"), ("valid", "<i4")])
    polarity = np.dtype([("data", "<u4"), ("ts", "<u4")])
    chunks = []
    while pos < len(raw):
        if pos + header.itemsize > len(raw):
            raise ValueError(f"{path}: truncated AEDAT 3.1 file: packet header cut at byte {pos}")
        h = np.frombuffer(raw, header, count=1, offset=pos)[0]
        pos += header.itemsize
        length = int(h["size"]) * int(h["capacity"])
        if length < 0 or pos + length > len(raw):
            raise ValueError(f"{path}: truncated AEDAT 3.1 file: packet at byte {pos} needs {length} bytes, {len(raw) - pos} left")
        if h["type"] == 1:  # polarity events
            if h["size"] != polarity.itemsize:
                raise ValueError(f"{path}: corrupt AEDAT 3.1 polarity packet: event size {int(h['size'])}, expected 8")
            ev = np.frombuffer(raw, polarity, count=int(h["number"]), offset=pos)
            ev = ev[(ev["data"] & 1) == 1]  # validity bit
            chunks.append((ev, int(h["ts_overflow"])))
        pos += length
    out = [np.zeros(0, EVENT_DTYPE)]
    for ev, overflow in chunks:
        part = np.empty(len(ev), EVENT_DTYPE)
        part["x"] = (ev["data"] >> 17) & 0x7FFF
        part["y"] = (ev["data"] >> 2) & 0x7FFF
        part["p"] = (ev["data"] >> 1) & 1
        part["t"] = ev["ts"].astype(np.int64) | (overflow << 31)
        out.append(part)
    return np.concatenate(out)


def read_gesture_labels(path: str | os.PathLike) -> list[tuple[int, int, int]]:
    """(class 0–10, start µs, end µs) rows of a DVS Gesture `_labels.csv` (classes 1–11 on disk)."""
    path = Path(path)
    rows = []
    for line_no, line in enumerate(path.read_text().splitlines()[1:], start=2):
        if not line.strip():
            continue
        try:
            label, start, end = (int(v) for v in line.split(","))
        except ValueError:
            raise ValueError(f"{path}:{line_no}: expected 'class,startTime_usec,endTime_usec', got {line!r}") from None
        if not 1 <= label <= 11:
            raise ValueError(f"{path}:{line_no}: gesture class {label} outside 1–11")
        rows.append((label - 1, start, end))
    return rows


@functools.lru_cache(maxsize=2)
def _recording(path: str) -> np.ndarray:
    events = read_aedat31(path)
    check_in_sensor(events, GESTURE_SENSOR, path)
    return events


class DVSGestureFolder(_EventSamples):
    """DVS Gesture release folder → (frames `[steps, 2, 128, 128]` from each gesture's start, label 0–10); a transform sees that window's events."""

    def __init__(self, root: str | os.PathLike, split: str = "train", steps: int = 1500, bin_us: int = 1000,
                 origin: str = "zero", transform=None, target_transform=None) -> None:
        self._binning(steps, bin_us, origin, transform, target_transform)
        root = Path(root)
        lists = {"train": "trials_to_train.txt", "test": "trials_to_test.txt"}
        if split not in lists:
            raise ValueError(f"DVS Gesture has splits 'train' and 'test', got {split!r}; a validation split is carved with dataset.val_fraction")
        listing = root / lists[split]
        if not listing.exists():
            raise FileNotFoundError(f"{listing} not found; pass the DvsGesture folder that holds the .aedat files and trials_to_*.txt")
        self.samples: list[tuple[str, int, int]] = []
        for name in listing.read_text().split():
            recording = root / name
            for label, start, _end in read_gesture_labels(recording.with_name(recording.stem + "_labels.csv")):
                self.samples.append((str(recording), label, start))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label, start = self.samples[index]
        events = _recording(path)
        t = events["t"]
        window = events[(t >= start) & (t < start + self.steps * self.bin_us)] if self.transform is not None else events
        return self._sample(window, label, GESTURE_SENSOR, start_us=start)


@DATASETS.register("dvs_gesture")
def dvs_gesture(root: str | os.PathLike, split: str = "train", steps: int = 1500, bin_us: int = 1000,
                origin: str = "zero", transform=None, target_transform=None) -> DVSGestureFolder:
    """DVS Gesture (11 classes, AEDAT 3.1) binned to `[steps, 2, 128, 128]`; test uses the first 1.5 s as in the paper."""
    return DVSGestureFolder(root, split, steps, bin_us, origin, transform, target_transform)


class NTIDIGITS18(_EventSamples):
    """N-TIDIGITS18 HDF5 file, single-digit utterances → (counts `[steps, 64]`, label: o = 0, 1–9, z = 10)."""

    def __init__(self, path: str | os.PathLike, split: str = "train", steps: int = 2000, bin_us: int = 1000,
                 origin: str = "zero", transform=None, target_transform=None) -> None:
        import h5py

        self._binning(steps, bin_us, origin, transform, target_transform)
        if split not in ("train", "test"):
            raise ValueError(f"N-TIDIGITS18 has splits 'train' and 'test', got {split!r}; a validation split is carved with dataset.val_fraction")
        self.path, self.split = Path(path), split
        try:
            with h5py.File(self.path, "r") as f:
                names = [v.decode() if isinstance(v, bytes) else str(v) for v in f[f"{split}_labels"][()]]
        except OSError as err:
            raise ValueError(f"{self.path}: not a readable N-TIDIGITS18 HDF5 file ({err})") from None
        except KeyError:
            raise ValueError(f"{self.path}: no '{split}_labels' dataset; expected the N-TIDIGITS18 layout ({split}_labels, {split}_addresses, {split}_timestamps)") from None
        self.samples = [(n, NTIDIGITS_CLASSES[n.split("-")[-1]]) for n in names if n.split("-")[-1] in NTIDIGITS_CLASSES]
        self._file = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        import h5py

        if self._file is None:
            self._file = h5py.File(self.path, "r")
        name, label = self.samples[index]
        try:
            channel = np.asarray(self._file[f"{self.split}_addresses/{name}"], dtype=np.int64)
            seconds = np.asarray(self._file[f"{self.split}_timestamps/{name}"], dtype=np.float64)
        except KeyError:
            raise ValueError(f"{self.path}: sample {name!r} has no addresses/timestamps in the {self.split} split") from None
        if channel.shape != seconds.shape:
            raise ValueError(f"{self.path}: sample {name!r} has {channel.size} addresses but {seconds.size} timestamps")
        events = np.zeros(channel.size, EVENT_DTYPE)
        events["x"], events["t"] = channel, np.round(seconds * 1e6).astype(np.int64)
        check_in_sensor(events, NTIDIGITS_SENSOR, f"{self.path} [{name}]")
        frames, target = self._sample(events, label, NTIDIGITS_SENSOR)
        return (frames.view(self.steps, -1) if self.transform is None else frames), target


@DATASETS.register("ntidigits18")
def ntidigits18(path: str | os.PathLike, split: str = "train", steps: int = 2000, bin_us: int = 1000,
                origin: str = "zero", transform=None, target_transform=None) -> NTIDIGITS18:
    """N-TIDIGITS18 single digits (11 classes) binned to `[steps, 64]` channel counts."""
    return NTIDIGITS18(path, split, steps, bin_us, origin, transform, target_transform)
