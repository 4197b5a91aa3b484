"""Event readers on tiny files written in the real on-disk formats; binning to ON/OFF frames; bad files."""

import struct

import h5py
import numpy as np
import pytest

from spikeforge.data.events import EVENT_DTYPE, events_to_frames, read_aedat31, read_nmnist, write_nmnist
from spikeforge.registry import DATASETS


def _nmnist_bytes(events):
    """40-bit NMNIST events written byte by byte: x, y, p<<7 | t[22:16], t[15:8], t[7:0]."""
    return bytes(b for x, y, t, p in events for b in (x, y, (p << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF))


def test_nmnist_reader_and_frames(tmp_path):
    path = tmp_path / "Train" / "7" / "00001.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(_nmnist_bytes([(3, 5, 1000, 1), (33, 0, 1500, 0), (3, 5, 2999, 1), (0, 0, 300_000, 0)]))
    ev = read_nmnist(path)
    assert ev["x"].tolist() == [3, 33, 3, 0] and ev["t"].tolist() == [1000, 1500, 2999, 300_000] and ev["p"].tolist() == [1, 0, 1, 0]
    frames = events_to_frames(ev, (34, 34, 2), steps=3)
    assert frames.shape == (3, 2, 34, 34) and frames.sum() == 3  # the event at 300 ms lies past 3 bins
    assert frames[1, 1, 5, 3] == 1 and frames[1, 0, 0, 33] == 1 and frames[2, 1, 5, 3] == 1
    data = DATASETS.get("nmnist")(root=tmp_path, split="train", steps=4)
    x, y = data[0]
    assert y == 7 and x.shape == (4, 2, 34, 34) and x.sum() == 3


def test_nmnist_writer_round_trip(tmp_path):
    ev = np.zeros(3, EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = [1, 2, 33], [4, 0, 33], [0, 70_000, 8_000_000], [0, 1, 1]
    write_nmnist(tmp_path / "a.bin", ev)
    assert (tmp_path / "a.bin").read_bytes() == _nmnist_bytes(zip(ev["x"], ev["y"], ev["t"], ev["p"]))
    np.testing.assert_array_equal(read_nmnist(tmp_path / "a.bin"), ev)


def test_nmnist_bad_files(tmp_path):
    bad = tmp_path / "cut.bin"
    bad.write_bytes(_nmnist_bytes([(1, 1, 10, 0), (2, 2, 20, 1)])[:-2])
    with pytest.raises(ValueError, match=r"cut\.bin: truncated or corrupt NMNIST file"):
        read_nmnist(bad)
    out = tmp_path / "wide.bin"
    out.write_bytes(_nmnist_bytes([(1, 1, 10, 0), (40, 2, 20, 1)]))
    with pytest.raises(ValueError, match=r"wide\.bin: event x = 40 lies outside the sensor size \(34, 34, 2\)"):
        read_nmnist(out)
    with pytest.raises(FileNotFoundError, match="NMNIST layout"):
        DATASETS.get("nmnist")(root=tmp_path, split="test")


def _aedat31(events, overflow=0, extra_packet=True):
    """An AEDAT 3.1 file: text header, then a special-event packet (type 0, skipped) and one polarity packet."""
    out = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"
    if extra_packet:
        out += struct.pack("<hhiiiiii", 0, 1, 8, 4, 0, 1, 1, 1) + struct.pack("<II", 0xDEAD, 5)
    body = b"".join(struct.pack("<II", (x << 17) | (y << 2) | (p << 1) | valid, t) for x, y, t, p, valid in events)
    return out + struct.pack("<hhiiiiii", 1, 1, 8, 4, overflow, len(events), len(events), len(events)) + body


def test_dvs_gesture_aedat_and_labels(tmp_path):
    events = [(10, 20, 1_000_500, 1, 1), (127, 0, 1_001_200, 0, 1), (5, 5, 1_001_300, 1, 0), (64, 64, 2_000_100, 1, 1)]
    (tmp_path / "user01_led.aedat").write_bytes(_aedat31(events))
    (tmp_path / "user01_led_labels.csv").write_text("class,startTime_usec,endTime_usec\n3,1000000,1900000\n11,2000000,2500000\n")
    (tmp_path / "trials_to_train.txt").write_text("user01_led.aedat\n")
    ev = read_aedat31(tmp_path / "user01_led.aedat")
    assert ev["x"].tolist() == [10, 127, 64] and ev["y"].tolist() == [20, 0, 64] and ev["p"].tolist() == [1, 0, 1]  # invalid one dropped
    data = DATASETS.get("dvs_gesture")(root=tmp_path, split="train", steps=3)
    assert len(data) == 2
    x, y = data[0]
    assert y == 2 and x.shape == (3, 2, 128, 128) and x[0, 1, 20, 10] == 1 and x[1, 0, 0, 127] == 1 and x.sum() == 2
    x, y = data[1]
    assert y == 10 and x[0, 1, 64, 64] == 1 and x.sum() == 1
    (tmp_path / "user02_led.aedat").write_bytes(_aedat31(events, overflow=1))
    assert read_aedat31(tmp_path / "user02_led.aedat")["t"][0] == 1_000_500 + 2**31


def test_dvs_gesture_bad_files(tmp_path):
    cut = tmp_path / "cut.aedat"
    cut.write_bytes(_aedat31([(1, 1, 10, 1, 1), (2, 2, 20, 1, 1)])[:-5])
    with pytest.raises(ValueError, match=r"cut\.aedat: truncated AEDAT 3\.1 file"):
        read_aedat31(cut)
    other = tmp_path / "other.aedat"
    other.write_bytes(b"#!AER-DAT2.0\r\n")
    with pytest.raises(ValueError, match=r"other\.aedat: not an AEDAT 3\.1 file"):
        read_aedat31(other)


def _ntidigits(path, samples):
    with h5py.File(path, "w") as f:
        f["train_labels"] = np.array([name.encode() for name in samples])
        for name, (channels, seconds) in samples.items():
            f[f"train_addresses/{name}"] = np.array(channels, dtype=np.uint8)
            f[f"train_timestamps/{name}"] = np.array(seconds, dtype=np.float32)


def test_ntidigits_hdf5(tmp_path):
    path = tmp_path / "n-tidigits.hdf5"
    _ntidigits(path, {"man-ae-z": ([0, 63, 63], [0.0005, 0.0021, 0.0022]), "woman-bc-1o3": ([1], [0.001]), "boy-ef-o": ([5], [0.0])})
    data = DATASETS.get("ntidigits18")(path=path, split="train", steps=4)
    assert len(data) == 2  # the multi-digit utterance is not one of the 11 classes
    x, y = data[0]
    assert y == 10 and x.shape == (4, 64) and x[0, 0] == 1 and x[2, 63] == 2 and x.sum() == 3
    assert data[1][1] == 0


def test_ntidigits_bad_files(tmp_path):
    junk = tmp_path / "junk.hdf5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match=r"junk\.hdf5: not a readable N-TIDIGITS18 HDF5 file"):
        DATASETS.get("ntidigits18")(path=junk)
    wide = tmp_path / "wide.hdf5"
    _ntidigits(wide, {"man-ae-3": ([70], [0.001])})
    with pytest.raises(ValueError, match=r"wide\.hdf5 \[man-ae-3\]: event x = 70 lies outside the sensor size \(64, 1, 1\)"):
        DATASETS.get("ntidigits18")(path=wide)[0]
