"""Leave-one-engine-out with every speaker equalised to the training speakers' average spectrum shape (speaker-level
cepstral mean normalisation in the Mel domain), training and evaluation alike:

    python benchmarks/speaker_equalised_loeo.py loeo kws_robust --data ROOT --out OUT --engines ENGINE

(any `spikeforge` command line; features cached under keys of their own). Each speaker's long-term average spectrum
shape s_f is the mean dB (below each clip's peak) over the frames within 30 dB of their clip's peak, over all of that
speaker's clips in the dataset, minus its mean over the bands; the reference r_f is the mean of s_f over the training
split's speakers (read first, as `spikeforge train` and `loeo` do). Every clip's Mel power is scaled by
10^(−(s_f − r_f)/10) before the front end and the training augmentation; silence clips are left as they are.
Unsupervised on the engine left out: it uses each speaker's unlabelled clips.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import numpy as np
import torch

import spikeforge.data.speech_commands as sc
from spikeforge.cli import main
from spikeforge.data.audio_features import db_below_peak, features_from_mel

SPEECH_DB = 30.0
_compute, _cache_key = sc.SpeechCommands._compute, sc.cache_key
_reference: list[np.ndarray] = []


def spectrum_shape(mels: list[np.ndarray]) -> np.ndarray:
    """Mean dB `[F]` over the frames of `mels` (each `[F, T]`) within SPEECH_DB of their clip's peak, minus its band mean."""
    db = [d[:, d.max(0) > -SPEECH_DB] for d in map(db_below_peak, mels)]
    mean = np.concatenate(db, 1).mean(1)
    return mean - mean.mean()


def equalised_compute(self, files, noise_files, silence, seed, keep_mel=False):
    """`SpeechCommands._compute` with each speaker's clips equalised to the training speakers' average shape."""
    out, meta = _compute(self, files, noise_files, silence, seed, True)
    lost = set(json.loads(meta["skipped"]))
    speakers = [sc.speaker_of(str(p)) for p, _ in files if str(p) not in lost] + [None] * silence
    mels = out["mel"].numpy().copy()
    clips = defaultdict(list)
    for i, speaker in enumerate(speakers):
        if speaker is not None:
            clips[speaker].append(i)
    shapes = {s: spectrum_shape([mels[i] for i in idx]) for s, idx in clips.items()}
    if self.split == "train":
        _reference[:] = [np.mean(list(shapes.values()), 0)]
    if not _reference:
        raise RuntimeError("the training split sets the reference spectrum shape and was read from the feature cache; use a fresh --out")
    for speaker, idx in clips.items():
        mels[idx] *= 10 ** (-(shapes[speaker] - _reference[0]) / 10)[:, None]
    out["features"] = torch.stack([features_from_mel(m, self.config) for m in mels])
    if keep_mel:
        out["mel"] = torch.from_numpy(mels)
    else:
        del out["mel"]
    return out, meta


sc.SpeechCommands._compute = equalised_compute
sc.cache_key = lambda config, files, extra: _cache_key(config, files, {**extra, "speaker_equalised": SPEECH_DB})

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
