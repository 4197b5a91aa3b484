"""Per-class numbers from a confusion matrix: per-class accuracy, balanced accuracy, keyword recall, grouped accuracy.

Plain accuracy on a class mix dominated by one class hides the others' failures; these do not.
In the keyword-spotting convention, classes named `_like_this_` (`_silence_`, `_unknown_`) are
fillers and the other classes are keywords.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch


def confusion_matrix(targets: torch.Tensor, predictions: torch.Tensor, classes: int) -> torch.Tensor:
    """`[classes, classes]` counts, row = true class, column = predicted class (int64)."""
    return torch.bincount(targets.long() * classes + predictions.long(), minlength=classes * classes).view(classes, classes)


def per_class_accuracy(confusion: torch.Tensor) -> torch.Tensor:
    """Recall of each class (its correct clips ÷ its clips); NaN for a class without clips."""
    counts = confusion.sum(1).double()
    return torch.where(counts > 0, confusion.diagonal().double() / counts.clamp(min=1), torch.full_like(counts, float("nan")))


def balanced_accuracy(confusion: torch.Tensor) -> float:
    """The mean per-class accuracy over the classes that have clips."""
    acc = per_class_accuracy(confusion)
    present = ~acc.isnan()
    return float(acc[present].mean()) if present.any() else float("nan")


def is_keyword(name: str) -> bool:
    """Filler classes are named `_like_this_`; every other class is a keyword."""
    return not (name.startswith("_") and name.endswith("_"))


def keyword_recall(confusion: torch.Tensor, classes: Sequence[str]) -> float | None:
    """Keyword clips classified as their keyword ÷ all keyword clips; None when the classes have no fillers (not a KWS task)."""
    keywords = torch.tensor([is_keyword(c) for c in classes])
    if bool(keywords.all()):
        return None
    total = confusion[keywords].sum()
    return float(confusion.diagonal()[keywords].sum() / total) if total > 0 else float("nan")


def grouped_accuracy(groups: Sequence[str], correct: torch.Tensor) -> dict[str, tuple[float, int]]:
    """Accuracy and clip count of each group, for one group name and one correct/wrong flag per clip; groups in natural
    order (numbers by value: "5–10 dB" before "10–15 dB")."""
    out: dict[str, list[int]] = {}
    for g, ok in zip(groups, correct.tolist()):
        tally = out.setdefault(g, [0, 0])
        tally[0] += int(ok)
        tally[1] += 1
    return {g: (c / n, n) for g, (c, n) in sorted(out.items(), key=lambda item: _natural(item[0]))}


def _natural(name: str) -> list:
    """Sort key that orders the digit runs of `name` by value."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]


def class_metrics(confusion: torch.Tensor | None, classes: Sequence[str] | None) -> dict:
    """The run summary's entries: balanced accuracy, keyword recall and per-class accuracy (empty without a confusion matrix)."""
    if confusion is None:
        return {}
    names = list(classes) if classes is not None and len(classes) == confusion.shape[0] else [str(i) for i in range(confusion.shape[0])]
    return {
        "balanced_accuracy": balanced_accuracy(confusion),
        "keyword_recall": keyword_recall(confusion, names),
        "per_class_accuracy": dict(zip(names, per_class_accuracy(confusion).tolist())),
        "confusion": confusion.tolist(),
    }


def format_confusion(confusion: torch.Tensor, classes: Sequence[str]) -> str:
    """The confusion matrix as a text table (rows true, columns predicted), class names shortened to 7 characters."""
    names = [c.strip("_")[:7] for c in classes]
    width = max(7, len(str(int(confusion.max()))) if confusion.numel() else 1)
    head = " " * 8 + " ".join(f"{n:>{width}}" for n in names)
    rows = [f"{n:<8}" + " ".join(f"{int(v):>{width}}" for v in row) for n, row in zip(names, confusion)]
    return "\n".join([head, *rows])


def class_report(confusion: torch.Tensor, classes: Sequence[str], groups: tuple[str, dict[str, tuple[float, int]]] | None = None) -> str:
    """Balanced accuracy, keyword recall, per-class accuracy, the confusion matrix and (given) accuracy per group, as text."""
    lines = [f"balanced accuracy {100 * balanced_accuracy(confusion):.2f}% (mean per-class accuracy)"]
    recall = keyword_recall(confusion, classes)
    if recall is not None:
        lines.append(f"keyword recall    {100 * recall:.2f}% (keyword clips recognised as their keyword)")
    lines.append("per-class accuracy:")
    counts = confusion.sum(1)
    for name, acc, n in zip(classes, per_class_accuracy(confusion).tolist(), counts.tolist()):
        cell = f"{'–':>7}" if n == 0 else f"{100 * acc:6.2f}%"
        lines.append(f"  {name:<10} {cell} ({n} clips)")
    lines += ["confusion matrix (rows: true class, columns: predicted):", format_confusion(confusion, classes)]
    if groups is not None:
        column, table = groups
        lines.append(f"accuracy per {column}:")
        lines += [f"  {g:<24} {100 * acc:6.2f}% ({n} clips)" for g, (acc, n) in table.items()]
    return "\n".join(lines)
