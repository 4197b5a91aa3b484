"""Saccade event generator: path, log-intensity change detection on a one-pixel image, NMNIST layout and CLI."""

import math

import numpy as np
import pytest

from spikeforge.cli import main
from spikeforge.data.events import read_nmnist
from spikeforge.data.saccade import generate, saccade_events, saccade_path
from spikeforge.registry import DATASETS


def test_saccade_path_is_nmnist_triangle():
    path = saccade_path()
    assert path.shape == (300, 2)
    np.testing.assert_allclose(path[[0, 100, 200]], [[0, 0], [3, 6], [6, 0]])
    np.testing.assert_allclose(path[-1], [0.06, 0.0], atol=1e-12)  # closing the triangle at 300 ms


def test_change_detection_on_one_bright_pixel():
    """A single pixel of intensity 1 leaves sensor pixel (13, 13) and reaches (16, 19) in the first saccade:
    log(1 + δ) − log(δ) = log 11 crosses C = 0.4 five times, as OFF events there and ON events at the end point."""
    ev = saccade_events(np.ones((1, 1, 1), dtype=np.float32), np.random.default_rng(0), threshold=0.4, mismatch=0.0)[0]
    first = ev[ev["t"] < 100_000]
    crossings = math.floor(math.log(1.1 / 0.1) / 0.4)
    at_start = first[(first["x"] == 13) & (first["y"] == 13)]
    at_end = first[(first["x"] == 16) & (first["y"] == 19)]
    assert crossings == 5
    assert len(at_start) == crossings and (at_start["p"] == 0).all()
    assert len(at_end) == crossings and (at_end["p"] == 1).all()
    assert np.all(np.diff(ev["t"]) >= 0) and ev["t"].max() < 300_000
    assert ev["x"].max() <= 19 and ev["y"].max() <= 19  # nothing outside the path of the pixel


def test_blank_image_gives_no_events_and_bad_input():
    assert len(saccade_events(np.zeros((1, 28, 28), np.float32), np.random.default_rng(0))[0]) == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        saccade_events(np.full((1, 28, 28), 255.0), np.random.default_rng(0))


def test_generate_nmnist_layout_and_cli(tmp_path):
    assert main(["data", "saccade-events", str(tmp_path), "--train", "3", "--test", "2", "--seed", "1"]) == 0
    files = sorted(tmp_path.glob("*/*/*.bin"))
    assert len(files) == 5 and {f.parts[-3] for f in files} == {"Train", "Test"}
    ev = read_nmnist(files[0])
    assert 1000 < len(ev) and set(np.unique(ev["p"])) == {0, 1}
    data = DATASETS.get("nmnist")(root=tmp_path, split="test", steps=300)
    x, y = data[0]
    assert x.shape == (300, 2, 34, 34) and 0 <= y < 10 and x.sum() > 1000
    with pytest.raises(ValueError, match="asked for"):
        generate(tmp_path / "big", train=70000, test=0)
