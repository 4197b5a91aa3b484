"""Surrogate-gradient back-propagation through time (low-activity paper §6; s2net report §5).

The loss is a named entry of the LOSSES registry applied to the per-step outputs; an optional
activity regulariser Σ_l w_l·L_r(l) (low-activity paper §5) is added on every spiking layer, optionally
ramped in linearly over the first `reg_warmup` epochs (the paper applies it from the first step; on a diverse
corpus the full weight silenced the deeper layers before the classifier learnt, docs/results/speech.md). `reg_budget` ρ*
charges only what a layer fires above the rate ρ* on the batch (not in the papers; `activity_regularizer`).
`mixup` α > 0 trains on mixed pairs (Zhang et al. 2018; not in the papers): x̃ = λ·x_i + (1 − λ)·x_j with λ ~ Beta(α, α)
and j a random permutation of the batch, loss λ·L(x̃, y_i) + (1 − λ)·L(x̃, y_j); drawn from torch's global generator.
`domain_adversary` λ_d > 0 trains domain-adversarially (Ganin et al. 2016; not in the papers): the model's `domain_head`
classifies each clip's domain d (e.g. its speech engine; `dataset.domains`) from the time-averaged spikes z of the last
spiking layer, loss + CE(D(R(z)), d) with R the gradient reversal of weight λ_d·ramp: the classifier learns to tell the
domains apart, the layers below to make them indistinguishable. Ramped in with the regulariser (`reg_warmup`).
`distill_from` names trained runs to distil from (Hinton et al. 2015; not in the papers; spikeforge.methods.distillation):
the task loss L becomes (1 − α)·L + α·T²·KL(p ‖ softmax(z / T)) with α = `distill_weight`, T = `distill_temperature`
and p the runs' mean softened probabilities on the same batch.
`consistency` λ_c > 0 trains on two views of every clip (each drawn through the dataset's random augmentation) and adds
λ_c·JS(p_1, p_2), the Jensen–Shannon divergence of their class distributions (AugMix, Hendrycks et al. 2020; not in
the papers; `spikeforge.losses.consistency`): the network is asked to answer alike however the clip was coloured.
`phone_ctc` λ_p > 0 adds λ_p·CTC of the model's `phone_head` scores per step, on the last spiking layer's spikes, against
the phones of the clip's word (`dataset.phones`; not in the papers; `spikeforge.losses.phones`).
`word_loss` λ_w > 0 adds λ_w·CE of the model's readout rows, one per word (`model.unknown_words`, a `WordReadout`), reduced
over time as the class scores are, against the clip's word (`dataset.words`; not in the papers): every word of `_unknown_`
is taught apart, and the class's score is the log-sum-exp of its words'.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.layers import WordReadout
from spikeforge.layers.domain import grad_reverse
from spikeforge.losses.consistency import js_consistency
from spikeforge.losses.phones import phone_ctc_loss
from spikeforge.losses.regularizer import activity_regularizer, regularizer_weights
from spikeforge.methods.base import Method, StepOutput
from spikeforge.methods.distillation import Teachers, distillation_loss
from spikeforge.metrics.latency import output_reduction
from spikeforge.metrics.reduce import reduce_time
from spikeforge.metrics.spikes import SpikeRecorder
from spikeforge.registry import LOSSES, METHODS


def _training_head(model: nn.Module, name: str) -> nn.Module | None:
    """The model's training-only head `name` (under DistributedDataParallel's `module` too); None if it has none."""
    return getattr(getattr(model, "module", model), name, None)


class SurrogateBPTT(Method):
    """Loss(outputs, y) + Σ_l w_l·L_r(l); gradients flow through spikes by the neurons' surrogate derivative."""

    def __init__(self, loss: str = "cross_entropy", loss_kwargs: dict | None = None, reg_weight: float | list[float] = 0.0, reg_schedule: str = "constant",
                 reg_warmup: float = 0.0, mixup: float = 0.0, domain_adversary: float = 0.0, distill_from: list[str] | None = None,
                 distill_weight: float = 0.5, distill_temperature: float = 2.0, reg_budget: float | None = None,
                 consistency: float = 0.0, phone_ctc: float = 0.0, word_loss: float = 0.0) -> None:
        self.loss_name = loss
        self.loss_fn = LOSSES.get(loss)
        self.loss_kwargs = dict(loss_kwargs or {})
        self.takes_reduction = "time_reduction" in inspect.signature(self.loss_fn).parameters
        self.reg_weight, self.reg_schedule = reg_weight, reg_schedule
        if reg_schedule not in ("constant", "linear"):
            raise ValueError(f"method.reg_schedule must be 'constant' or 'linear', got {reg_schedule!r}")
        if any(float(w) < 0 for w in (reg_weight if isinstance(reg_weight, (list, tuple)) else [reg_weight])):
            raise ValueError(f"method.reg_weight must be >= 0 (it weights a penalty on spike counts; a negative one rewards spiking), got {reg_weight}")
        if reg_warmup < 0:
            raise ValueError(f"method.reg_warmup must be >= 0 epochs, got {reg_warmup}")
        self.reg_warmup, self.epochs_done = float(reg_warmup), 0.0
        if reg_budget is not None and not 0 <= reg_budget < 1:
            raise ValueError(f"method.reg_budget is the spike rate per layer the regulariser lets pass free, in [0, 1) (null: none), got {reg_budget}")
        self.reg_budget = reg_budget
        if mixup < 0:
            raise ValueError(f"method.mixup is the Beta(α, α) parameter of the mixing weight, ≥ 0 (0: off), got {mixup}")
        self.mixup = float(mixup)
        if domain_adversary < 0:
            raise ValueError(f"method.domain_adversary is the gradient reversal's weight λ_d ≥ 0 (0: off), got {domain_adversary}")
        self.domain_adversary = float(domain_adversary)
        if consistency < 0:
            raise ValueError(f"method.consistency is the weight λ_c ≥ 0 of the views' Jensen–Shannon divergence (0: off), got {consistency}")
        if consistency > 0 and mixup > 0:
            raise ValueError("method.consistency compares views of the same clip, and mixup mixes each clip with another; use one of them")
        self.consistency = float(consistency)
        if phone_ctc < 0:
            raise ValueError(f"method.phone_ctc is the weight λ_p ≥ 0 of the auxiliary phone loss (0: off), got {phone_ctc}")
        if phone_ctc > 0 and mixup > 0:
            raise ValueError("method.phone_ctc asks for the phones of each clip's word, and mixup mixes two words; use one of them")
        self.phone_ctc = float(phone_ctc)
        if word_loss < 0:
            raise ValueError(f"method.word_loss is the weight λ_w ≥ 0 of the loss on each clip's word (0: off), got {word_loss}")
        if word_loss > 0 and mixup > 0:
            raise ValueError("method.word_loss asks for each clip's word, and mixup mixes two words; use one of them")
        self.word_loss = float(word_loss)
        self.views = 2 if consistency > 0 else 1
        if not 0 <= distill_weight <= 1 or distill_temperature <= 0:
            raise ValueError(f"method.distill_weight α weighs the teachers' loss against the task's, in [0, 1], and method.distill_temperature T "
                             f"softens both distributions, > 0; got α = {distill_weight}, T = {distill_temperature}")
        self.distill_weight = float(distill_weight)
        self.teachers = Teachers(distill_from, distill_temperature) if distill_from is not None else None

    def set_progress(self, epochs: float) -> None:
        self.epochs_done = epochs

    def reg_ramp(self) -> float:
        """The regulariser's factor now: min(1, epochs done / reg_warmup), 1 without a warm-up."""
        return 1.0 if self.reg_warmup == 0 else min(1.0, self.epochs_done / self.reg_warmup)

    def _weights(self, layers: int) -> list[float]:
        if isinstance(self.reg_weight, (list, tuple)):
            if len(self.reg_weight) != layers:
                raise ValueError(f"method.reg_weight lists {len(self.reg_weight)} weights but the model has {layers} spiking layers")
            weights = [float(w) for w in self.reg_weight]
        else:
            weights = regularizer_weights(layers, float(self.reg_weight), self.reg_schedule)
        return [self.reg_ramp() * w for w in weights]

    def loss(self, model: nn.Module, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The named loss on `outputs` [T, B, classes], with the model's time reduction when the loss takes one."""
        kwargs = dict(self.loss_kwargs)
        if self.takes_reduction:
            kwargs.setdefault("time_reduction", output_reduction(model))
        return self.loss_fn(outputs, y, **kwargs)

    def domain_loss(self, model: nn.Module, spikes: torch.Tensor, domain: torch.Tensor) -> tuple[torch.Tensor, float]:
        """(CE(D(R(z)), d), accuracy of D) over the clips with a domain (d ≥ 0); z = the spikes `[T, B, ...]` averaged over time."""
        head = _training_head(model, "domain_head")
        if head is None:
            raise ValueError("method.domain_adversary needs a model with a domain classifier: set model.domain_classes to the number of domains "
                             "(e.g. engines in the corpus's speakers.csv)")
        known = domain >= 0
        if int(domain.max()) >= head.domains:
            raise ValueError(f"domain label {int(domain.max())} but model.domain_classes is {head.domains}; set it to the number of domains")
        z = spikes.mean(0).flatten(1)[known]
        scores = head(grad_reverse(z, self.domain_adversary * self.reg_ramp()))
        if not bool(known.any()):  # a batch of silence clips only: no domain to classify, zero loss that keeps the graph
            return scores.sum() * 0.0, float("nan")
        target = domain[known]
        return F.cross_entropy(scores, target), float((scores.argmax(-1) == target).float().mean())

    def phone_loss(self, model: nn.Module, spikes: torch.Tensor, phones: torch.Tensor) -> torch.Tensor:
        """CTC of the phone head's per-step scores on the last conv layer's spikes `[T, B, ...]` against the word's phones."""
        head = _training_head(model, "phone_head")
        if head is None:
            from spikeforge.data.lexicon import PHONES  # only for the message: training other data imports no speech module

            raise ValueError("method.phone_ctc needs a model with a phone readout: set model.phone_classes "
                             f"(the number of phones + 1: {len(PHONES) + 1} with spikeforge.data.lexicon's)")
        return phone_ctc_loss(head(spikes.flatten(2)), phones)

    def _word_readout(self, model: nn.Module) -> WordReadout:
        readout = _training_head(model, "readout")
        if not isinstance(readout, WordReadout):
            raise ValueError("method.word_loss needs a readout with one row per word: set model.unknown_words to the number of "
                             "words of the `_unknown_` class (20 in Speech Commands v1 and the generated corpus, 25 in v2)")
        return readout

    def word_rows_loss(self, model: nn.Module, readout: WordReadout, inputs: torch.Tensor, word: torch.Tensor) -> torch.Tensor:
        """CE of the readout's rows on its `inputs` (the spikes it read), reduced over time, against each clip's row `word`."""
        rows = reduce_time(readout.words(inputs), output_reduction(model))
        if int(word.max()) >= rows.shape[-1]:
            raise ValueError(f"word row {int(word.max())} but the readout has {rows.shape[-1]} rows; set model.unknown_words to the number "
                             "of words of `_unknown_` in the dataset")
        return F.cross_entropy(rows, word)

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, domain: torch.Tensor | None = None,
             phones: torch.Tensor | None = None, word: torch.Tensor | None = None) -> StepOutput:
        mixed = self.mixup > 0 and model.training
        if mixed:  # time-major [T, B, ...]: pairs along the batch axis
            lam = float(torch.distributions.Beta(self.mixup, self.mixup).sample())
            partner = torch.randperm(x.shape[1], device=x.device)
            x = lam * x + (1 - lam) * x[:, partner]
        words = self.word_loss > 0 and model.training
        if words:
            if word is None:
                raise ValueError("method.word_loss needs each training clip's word: set dataset.words to true")
            readout, read = self._word_readout(model), []  # the spikes the readout reads, for its word rows
            hook = readout.register_forward_hook(lambda module, args, out: read.append(args[0]))
        try:
            with SpikeRecorder(model) as rec:
                outputs = model(x)
        finally:
            if words:
                hook.remove()
        reduced = reduce_time(outputs, output_reduction(model))  # the time-reduced scores [B, classes]: distillation, consistency, logits
        loss = self.loss(model, outputs, y)
        if mixed:
            loss = lam * loss + (1 - lam) * self.loss(model, outputs, y[partner])
        extras = {"task_loss": float(loss.detach())}
        if self.teachers is not None and model.training:  # the teachers see the batch as the student does (mixed pairs included)
            soft = distillation_loss(reduced, self.teachers.probabilities(x), self.teachers.temperature)
            extras["distill_loss"] = float(soft.detach())
            loss = (1 - self.distill_weight) * loss + self.distill_weight * soft
        if self.consistency > 0 and model.training:
            if not torch.equal(y[0::2], y[1::2]):
                raise ValueError("method.consistency needs every clip twice in a row in its batch, as the Trainer samples them; "
                                 "this batch's labels do not come in pairs")
            js = js_consistency(reduced, self.views)
            extras["consistency_loss"] = float(js.detach())
            loss = loss + self.consistency * js
        spikes = list(rec.spikes.values())
        has_reg = any(w != 0 for w in self.reg_weight) if isinstance(self.reg_weight, (list, tuple)) else self.reg_weight != 0
        if has_reg and spikes and self.reg_ramp() > 0:
            reg = activity_regularizer(spikes, self._weights(len(spikes)), self.reg_budget)  # low-activity paper §5
            loss = loss + reg
            extras["reg_loss"] = float(reg.detach())
        if self.domain_adversary > 0 and model.training:
            if domain is None:
                raise ValueError("method.domain_adversary needs each training clip's domain: set dataset.domains (e.g. 'engine')")
            adv, accuracy = self.domain_loss(model, spikes[-1], domain)
            loss = loss + adv
            extras |= {"domain_loss": float(adv.detach()), "domain_accuracy": accuracy}
        if self.phone_ctc > 0 and model.training:
            if phones is None:
                raise ValueError("method.phone_ctc needs each training clip's phones: set dataset.phones to true")
            ctc = self.phone_loss(model, spikes[-1], phones)
            loss = loss + self.phone_ctc * ctc
            extras["phone_loss"] = float(ctc.detach())
        if words:
            wl = self.word_rows_loss(model, readout, read[0], word)
            loss = loss + self.word_loss * wl
            extras["word_loss"] = float(wl.detach())
        logits = reduced.detach()
        return StepOutput(loss=loss, logits=logits, spike_rates=rec.rates(), extras=extras)


@METHODS.register("surrogate_bptt")
def surrogate_bptt(loss: str = "cross_entropy", loss_kwargs: dict | None = None, reg_weight: float | list[float] = 0.0, reg_schedule: str = "constant",
                   reg_warmup: float = 0.0, mixup: float = 0.0, domain_adversary: float = 0.0, distill_from: list[str] | None = None,
                   distill_weight: float = 0.5, distill_temperature: float = 2.0, reg_budget: float | None = None,
                   consistency: float = 0.0, phone_ctc: float = 0.0, word_loss: float = 0.0) -> SurrogateBPTT:
    """Surrogate BPTT with loss `loss` (a LOSSES name), activity-regulariser weight(s) `reg_weight` ramped in over `reg_warmup` epochs
    on the spikes above the rate `reg_budget` (all of them by default), trained on mixed pairs with `mixup` α > 0, domain-adversarially with `domain_adversary` λ_d > 0, distilled from the runs `distill_from`,
    on two views of each clip kept alike by `consistency` λ_c > 0, with the auxiliary phone loss of weight `phone_ctc` λ_p > 0,
    with the loss on each clip's word of weight `word_loss` λ_w > 0."""
    return SurrogateBPTT(loss, loss_kwargs, reg_weight, reg_schedule, reg_warmup, mixup, domain_adversary, distill_from, distill_weight,
                         distill_temperature, reg_budget, consistency, phone_ctc, word_loss)
