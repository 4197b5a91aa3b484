"""tonic and the event datasets: `transform=` takes tonic transforms; `origin="first_event"` bins exactly as `tonic.transforms.ToFrame`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import tonic.transforms as T

from spikeforge.data.events import EVENT_DTYPE, NMNIST_SENSOR, events_to_frames, read_nmnist, write_nmnist
from spikeforge.registry import DATASETS


def _events(n: int = 400, start: int = 1234, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n)
    ev["t"] = np.sort(rng.integers(start, start + 20_000, n))
    return ev


@pytest.mark.parametrize("bin_us", [1000, 700])
def test_first_event_origin_reproduces_tonic_to_frame(bin_us):
    ev = _events()
    tonic_frames = T.ToFrame(sensor_size=NMNIST_SENSOR, time_window=bin_us, include_incomplete=True)(ev.copy())
    ours = events_to_frames(ev, NMNIST_SENSOR, steps=len(tonic_frames), bin_us=bin_us, origin="first_event")
    assert torch.equal(ours, torch.from_numpy(tonic_frames.astype(np.float32)))
    complete = T.ToFrame(sensor_size=NMNIST_SENSOR, time_window=bin_us)(ev.copy())  # tonic's default drops the last partial window
    assert torch.equal(ours[: len(complete)], torch.from_numpy(complete.astype(np.float32)))
    zero = events_to_frames(ev, NMNIST_SENSOR, steps=len(tonic_frames), bin_us=bin_us)  # t = 0 origin: shifted by 1234 µs
    assert not torch.equal(zero, ours) and zero.sum() < ours.sum()


def test_bad_origin_is_one_line():
    with pytest.raises(ValueError, match="origin must be one of"):
        events_to_frames(_events(), NMNIST_SENSOR, steps=3, origin="first")


def test_nmnist_folder_takes_tonic_transforms(tmp_path):
    for i, digit in enumerate((3, 7)):
        write_nmnist(tmp_path / "Train" / str(digit) / "a.bin", _events(seed=i))
    files = sorted((tmp_path / "Train").glob("*/*.bin"))
    to_frame = T.ToFrame(sensor_size=NMNIST_SENSOR, time_window=1000)
    binned = DATASETS.get("nmnist")(root=tmp_path, split="train", transform=T.Compose([T.Downsample(time_factor=0.5), to_frame]),
                                   target_transform=lambda y: y + 100)
    frames, label = binned[0]
    expected = to_frame(T.Downsample(time_factor=0.5)(read_nmnist(files[0])))
    assert torch.equal(frames, torch.from_numpy(expected.astype(np.float32))) and label == 103
    # a transform that returns events: spikeforge bins them with its own options
    halved = DATASETS.get("nmnist")(root=tmp_path, split="train", steps=12, origin="first_event", transform=T.Downsample(time_factor=0.5))
    frames, label = halved[1]
    direct = events_to_frames(T.Downsample(time_factor=0.5)(read_nmnist(files[1])), NMNIST_SENSOR, 12, origin="first_event")
    assert torch.equal(frames, direct) and label == 7 and frames.sum() > 0
