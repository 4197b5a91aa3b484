"""Audio arriving as bytes (a microphone or decoder piped to stdin): 16-bit PCM, raw or behind a WAV header, as float32
samples in chunks as they come."""

from __future__ import annotations

import struct
import warnings
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np


def pipe_hint(rate: int) -> str:
    """How to make the stream `pcm_chunks` reads, with common tools."""
    return (f"pipe 16-bit mono PCM at {rate} Hz, raw or as WAV, e.g. `arecord -f S16_LE -r {rate} -c 1 | ...` or "
            f"`sox IN -t raw -r {rate} -c 1 -e signed -b 16 - | ...`")


def pcm_chunks(source: BinaryIO, sample_rate: int, chunk_ms: float = 100.0, name: str = "stdin") -> Iterator[np.ndarray]:
    """Mono float32 samples of `source` in chunks of `chunk_ms` (the last may be shorter), each as soon as it has arrived.

    The bytes are 16-bit little-endian PCM at `sample_rate`: raw (mono), or after a WAV header (PCM, 16 bit,
    `sample_rate`; several channels are averaged), which is read and checked at once. Samples are int16 / 32768, as
    soundfile reads a 16-bit WAV file. A stream's declared data size is ignored (a live recorder cannot know it):
    samples are read until the input ends."""
    head = _read(source, 4)
    channels = _wav_channels(source, sample_rate, name) if head == b"RIFF" else 1
    return _samples(source, b"" if head == b"RIFF" else head, channels, max(1, round(sample_rate * chunk_ms / 1000)),
                    f"{name}: no audio arrived; {pipe_hint(sample_rate)}")


def _samples(source: BinaryIO, pending: bytes, channels: int, frames: int, empty: str) -> Iterator[np.ndarray]:
    """Chunks of `frames` frames of `channels` int16 samples (after the bytes `pending`), downmixed; ValueError(`empty`)
    if the input ends before one sample."""
    frame_bytes = 2 * channels
    size, total = frame_bytes * frames, 0
    while True:
        data = pending + _read(source, size - len(pending))
        usable = len(data) - len(data) % frame_bytes
        pending = data[usable:]
        if usable:
            pcm = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
            total += usable
            yield pcm.reshape(-1, channels).mean(axis=1) if channels > 1 else pcm
        if len(data) < size:  # the input ended
            break
    if total == 0:
        raise ValueError(empty)


def _read(source: BinaryIO, n: int) -> bytes:
    """Up to `n` bytes, fewer only at the end of the input (a pipe may deliver them in pieces)."""
    parts, got = [], 0
    while got < n:
        part = source.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _wav_channels(source: BinaryIO, sample_rate: int, name: str) -> int:
    """Reads a WAV header after its 'RIFF' up to the start of the samples; their channel count, checked for 16-bit
    PCM at `sample_rate`."""
    def fail(problem: str) -> ValueError:
        return ValueError(f"{name}: {problem}; {pipe_hint(sample_rate)}")

    if _read(source, 8)[4:] != b"WAVE":
        raise fail("a RIFF header that is not WAVE")
    fmt = None
    while True:
        chunk = _read(source, 8)
        if len(chunk) < 8:
            raise fail("a WAV header without a data chunk")
        kind, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if kind == b"data":
            break
        body = _read(source, length + length % 2)  # chunks are padded to an even size
        if kind == b"fmt ":
            if len(body) < 16:
                raise fail("a truncated WAV format chunk")
            fmt = struct.unpack("<HHIIHH", body[:16])
    if fmt is None:
        raise fail("a WAV header without a format chunk")
    tag, channels, rate, _, _, bits = fmt
    if tag not in (1, 0xFFFE) or bits != 16:
        raise fail(f"WAV samples of {bits} bits{'' if tag in (1, 0xFFFE) else f' in format {tag}'}, where 16-bit PCM is read")
    if rate != sample_rate:
        raise fail(f"WAV sampled at {rate} Hz, where the run's features need {sample_rate} Hz (a stream is not resampled)")
    if channels < 1:
        raise fail("a WAV header with no channels")
    if channels > 1:
        warnings.warn(f"{name}: {channels} channels, downmixed to mono", stacklevel=3)
    return channels
