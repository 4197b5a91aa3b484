"""Log-Mel frames of an endless signal, as it arrives: the same frames as `audio_features.mel_power` followed by
`running_normalize` or `running_peak_db` (with `config.cepstra`, its spectral envelope), and the other as a second channel
with `config.second_front_end`."""

from __future__ import annotations

import librosa
import numpy as np
import scipy.signal

from spikeforge.data.audio_features import CAUSAL, LogMelConfig, frame_db, spectral_envelope


class StreamingLogMel:
    """Push samples in chunks of any size, get the finished feature frames `[n, C, F]` (C = `config.channels`, 1 or 2).

    Frame n is centred on sample n·hop, so it is finished once half a window past that sample has
    arrived (15 ms with the defaults); `flush()` ends the stream with zeros, as the whole-signal
    features do. Normalisation is `config.normalization` over the last `config.steps` frames (`running_normalize` or
    `running_peak_db`), and `config.second_front_end` in the second channel.
    """

    def __init__(self, config: LogMelConfig = LogMelConfig()) -> None:
        if not config.causal:
            raise ValueError(f"normalization={config.normalization!r} looks at the whole clip and cannot be streamed; "
                             f"use one of {sorted(CAUSAL.values())}")
        self.config = config
        self.window = scipy.signal.get_window("hann", config.win_length, fftbins=True)
        self.filters = librosa.filters.mel(sr=config.sample_rate, n_fft=config.win_length, n_mels=config.n_mels,
                                           fmin=config.fmin, fmax=config.fmax)
        half = config.win_length // 2
        self.buffer = np.zeros(half, dtype=np.float32)  # the zero padding before the signal, then unread samples
        self.received = 0
        self.frames = 0
        self.peaks = np.zeros(config.steps)  # largest Mel power of each of the last `steps` frames
        self.past = np.zeros((config.steps, config.n_mels))  # compressed frames of the last `steps` frames
        self.done = False
        # (normalisation, cepstra) of each output channel: the first front end, then the second (no envelope)
        self.front_ends = [(config.normalization, config.cepstra), *([(config.second_front_end, 0)] if config.second_front_end else [])]

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Append `samples` (mono, `config.sample_rate`); returns the frames finished by them `[n, C, F]` (n may be 0)."""
        if self.done:
            raise ValueError("the stream was flushed; make a new StreamingLogMel for a new signal")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.buffer = np.concatenate([self.buffer, samples])
        self.received += len(samples)
        return self._frames(self.buffer)

    def flush(self) -> np.ndarray:
        """End the stream: the remaining frames up to 1 + samples // hop, as if zeros followed."""
        self.done = True
        total = 1 + self.received // self.config.hop_length
        pad = max(0, (total - self.frames - 1) * self.config.hop_length + self.config.win_length - len(self.buffer))
        return self._frames(np.concatenate([self.buffer, np.zeros(pad, dtype=np.float32)]), limit=total - self.frames)

    def _frames(self, buffer: np.ndarray, limit: int | None = None) -> np.ndarray:
        c = self.config
        count = 0 if len(buffer) < c.win_length else 1 + (len(buffer) - c.win_length) // c.hop_length
        if limit is not None:
            count = min(count, limit)
        out = np.empty((count, c.channels, c.n_mels), dtype=np.float32)
        for i in range(count):
            segment = buffer[i * c.hop_length : i * c.hop_length + c.win_length]
            power = np.abs(np.fft.rfft(segment * self.window)) ** 2
            out[i] = self._normalize(self.filters @ power)
        self.buffer = buffer[count * c.hop_length :]
        self.frames += count
        return out

    def _normalize(self, mel: np.ndarray) -> np.ndarray:
        """The channels `[C, F]` of one new frame: `running_normalize` and/or `running_peak_db`, from the last `steps`
        frames' peaks (and compressed values)."""
        self.peaks = np.roll(self.peaks, -1)
        self.peaks[-1] = mel.max()
        ref = self.peaks.max()
        if any(name == "running" for name, _ in self.front_ends):
            self.past = np.roll(self.past, -1, axis=0)
            self.past[-1] = np.log1p(mel / (ref if ref > 0 else 1.0))
        return np.stack([self._channel(mel, ref, name, cepstra) for name, cepstra in self.front_ends])

    def _channel(self, mel: np.ndarray, ref: float, normalization: str, cepstra: int) -> np.ndarray:
        """One channel `[F]` of the new frame `mel` under `normalization`, whose window's peak power is `ref` (`running`: the
        frame compressed last into `past`)."""
        if normalization == "running_db":
            db = frame_db(mel[:, None], np.array([ref]))
            return (spectral_envelope(db, cepstra) if cepstra else db)[:, 0]
        std = self.past.std(0)
        return self.past[-1] / np.where(std > 0, std, 1.0)
