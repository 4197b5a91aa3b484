"""Evaluation over a dataset split: loss, accuracy, spike rates; optionally synaptic operations, accuracy vs time, a sample."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from spikeforge.methods.base import Method
from spikeforge.metrics.classification import confusion_matrix
from spikeforge.metrics.latency import correct_vs_time
from spikeforge.metrics.spikes import SpikeRecorder
from spikeforge.metrics.synops import SynOpsCounter
from spikeforge.train.distributed import Context, sum_across
from spikeforge.train.encode import encode
from spikeforge.train.sampling import shard


@dataclass
class Evaluation:
    """Totals of one pass over a split (summed over ranks)."""

    loss: float
    accuracy: float
    samples: int
    spike_rates: dict[str, float]
    accuracy_vs_time: list[float] = field(default_factory=list)
    synops: dict[str, float] = field(default_factory=dict)
    sample: tuple[dict[str, torch.Tensor], torch.Tensor, int] | None = None
    confusion: torch.Tensor | None = None  # [classes, classes] counts over all ranks (detailed only)
    predictions: torch.Tensor | None = None  # this rank's predicted class per sample, in dataset order (detailed only)
    scores: torch.Tensor | None = None  # this rank's softmax of the method's scores `[N, classes]`, in dataset order (detailed only)
    targets: torch.Tensor | None = None  # this rank's true class per sample, in dataset order (detailed only)


def _per_step(model: nn.Module, method: Method, x: torch.Tensor, y: torch.Tensor, syn: SynOpsCounter, sample: list) -> torch.Tensor | None:
    """Per-step outputs via `method.predict`, counting synaptic operations and keeping the first sample's spikes."""
    with SpikeRecorder(model) as rec:
        outputs = method.predict(model, x)
    syn.add_samples(x.shape[1])
    if not sample:
        sample.append(({k: v[:, 0] for k, v in rec.spikes.items()}, outputs[:, 0] if outputs.dim() == 3 else outputs, int(y[0])))
    reduction = getattr(model, "output_reduction", None)
    if outputs.dim() != 3 or reduction not in ("mean", "max", "sum"):
        return None  # outputs that are not per-step scores (one-spike times: "spike_time") have no accuracy-vs-time curve
    return correct_vs_time(outputs, y, reduction)


@torch.no_grad()
def evaluate(model: nn.Module, method: Method, dataset: Dataset, encoder: dict, batch_size: int, ctx: Context, detailed: bool = False) -> Evaluation:
    """One pass over this rank's share of `dataset`; `detailed` adds synops, accuracy vs time and a recorded sample."""
    was_training = model.training
    model.eval()
    loader = DataLoader(Subset(dataset, shard(len(dataset), ctx.rank, ctx.world_size)), batch_size=batch_size, shuffle=False)
    loss_sum, correct, count = 0.0, 0.0, 0
    rate_sums: dict[str, float] = {}
    cvt: torch.Tensor | None = None
    sample: list = []
    targets, predicted, scores = [], [], []
    with SynOpsCounter(model) as syn:
        for x, y, *_ in loader:  # a validation split carved from training data keeps its training-only labels: unused here
            x, y = encode(x.to(ctx.device), encoder), y.to(ctx.device)
            out = method.step(model, x, y)
            n = y.shape[0]
            loss_sum += float(out.loss) * n
            correct += float((out.logits.argmax(-1) == y).sum())
            count += n
            if detailed and out.logits.dim() == 2:
                targets.append(y.cpu())
                predicted.append(out.logits.argmax(-1).cpu())
                scores.append(torch.softmax(out.logits.detach().float(), -1).cpu())
            for name, rate in out.spike_rates.items():
                rate_sums[name] = rate_sums.get(name, 0.0) + rate * n
            if detailed:
                c = _per_step(model, method, x, y, syn, sample)
                if c is not None:
                    cvt = c.double().cpu() if cvt is None else cvt + c.double().cpu()
    names = list(rate_sums)
    syn_names = sorted(syn.ops)
    steps = cvt.numel() if cvt is not None else 0
    packed = torch.tensor([loss_sum, correct, count, syn.samples] + [rate_sums[k] for k in names] + [syn.ops[k] for k in syn_names], dtype=torch.float64)
    packed = sum_across(torch.cat([packed, cvt if cvt is not None else packed.new_zeros(0)]), ctx)
    loss_sum, correct, count, syn_samples = packed[:4].tolist()
    rates = dict(zip(names, (packed[4 : 4 + len(names)] / max(count, 1)).tolist()))
    ops = packed[4 + len(names) : 4 + len(names) + len(syn_names)] / max(syn_samples, 1)
    curve = (packed[len(packed) - steps :] / max(count, 1)).tolist() if steps else []
    confusion = predictions = None
    if predicted:
        predictions = torch.cat(predicted)
        local = confusion_matrix(torch.cat(targets), predictions, out.logits.shape[-1])
        confusion = sum_across(local.double(), ctx).round().long()
    model.train(was_training)
    return Evaluation(
        loss=loss_sum / max(count, 1), accuracy=correct / max(count, 1), samples=int(count), spike_rates=rates,
        accuracy_vs_time=curve, synops=dict(zip(syn_names, ops.tolist())) if detailed else {}, sample=sample[0] if sample else None,
        confusion=confusion, predictions=predictions,
        scores=torch.cat(scores) if scores else None, targets=torch.cat(targets) if targets else None,
    )
