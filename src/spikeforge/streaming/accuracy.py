"""Streaming accuracy as TensorFlow's `test_streaming_accuracy` counts it, against a `label,time_ms` ground-truth file.

Each detection (label, t) is matched to the first ground-truth word within t ± tolerance (TF: 750 ms): correct
if it has the same label and that word was not matched before, otherwise wrong; a detection with no word in
reach is a false positive. Percentages are of the ground-truth words. `matched` counts the distinct words some
detection fell on (TF's counter counts a word twice when two detections fall on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StreamingStats:
    """Counts of one scored recording."""

    words: int
    matched: int
    correct: int
    wrong: int
    false_positives: int

    def line(self, tolerance_ms: float) -> str:
        """TF's summary line: matched / correct / wrong / false-positive percentages of the ground-truth words."""
        share = lambda n: 100.0 * n / max(self.words, 1)  # noqa: E731
        return (f"{share(self.matched):.1f}% matched, {share(self.correct):.1f}% correct, {share(self.wrong):.1f}% wrong, "
                f"{share(self.false_positives):.1f}% false positive ({self.words} keywords, ±{tolerance_ms:.0f} ms)")


def read_labels(path: str | Path) -> list[tuple[str, float]]:
    """(label, time in ms) of every `label,time_ms` line, sorted by time; a line of another shape is a ValueError naming it."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        label, _, time_ms = line.partition(",")
        try:
            out.append((label.strip(), float(time_ms)))  # no comma, or more than one: float("") / float("1,2") fail
        except ValueError:
            raise ValueError(f"{path}, line {n}: {line!r} is not 'label,time_ms' (the format of TF's streaming test labels)") from None
    return sorted(out, key=lambda item: item[1])


def score(found: list[tuple[str, float]], truth: list[tuple[str, float]], tolerance_ms: float = 750.0) -> StreamingStats:
    """TF's counts for detections `found` [(label, ms)] against `truth` [(label, ms)] sorted by time."""
    matched: set[int] = set()
    correct = wrong = false_positives = 0
    for label, t in found:
        hit = next((i for i, (_, when) in enumerate(truth) if t - tolerance_ms <= when <= t + tolerance_ms), None)
        if hit is None:
            false_positives += 1
            continue
        if truth[hit][0] == label and hit not in matched:
            correct += 1
        else:
            wrong += 1
        matched.add(hit)
    return StreamingStats(len(truth), len(matched), correct, wrong, false_positives)
