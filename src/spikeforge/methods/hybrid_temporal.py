"""Hybrid learning with one-spike temporal coding (hybrid paper): constrained ANN → ReL-PSP SNN → STDBP.

Stage 1, method ``hybrid_ann``: the ANN (bias-free, ReLU, max-pooling) is trained with
L = CE + λ_w·L_wsum + λ_a·L_acti (eqs. 9–11); λ_w = λ_a = 0 is the CE-only initialisation of STDBP [14].
L_wsum covers the layers that become spiking; L_acti covers every weighted layer, the output layer included
(eq. 11 sums over all L layers; an output pre-activation above 1 makes that neuron fire before its last input
arrives, which breaks the equivalence).
λ_a may be one weight per weighted layer (e.g. 0 for the output layer, whose logits CE wants large).
Conversion, `convert_to_snn`: θ_s = θ_a, ϑ = 1, max-pooling → min-pooling, ReLU → force firing (eq. 8) or
nothing, the first `analog_layers` weighted layers optionally kept analog (the C2F3 note). The output layer may
get its own threshold ϑ_out: with Σw = 1 its neuron j fires at t = L + (ϑ_out − u_j) (eqs. 6–7 one layer up),
so the earliest spike is still the ANN's argmax, and the equivalence holds for every u_j ≤ ϑ_out instead of
only u_j ≤ 1. `calibrate_output_threshold` picks ϑ_out on training inputs (1 unless a larger value keeps
more of the ANN's decisions); hidden layers keep ϑ = 1, so force firing (eq. 8) is unchanged.
Stage 2, method ``stdbp``: the SNN's output spike times t_out [B, classes] are trained with CE on −t_out; the
predicted class is the earliest output spike.

Both methods read one static frame: x is time-major [1, B, ...] intensities in [0, 1] (encoder
``{name: direct, steps: 1}``); `predict` returns scores [1, B, classes] (logits, or −t_out).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from spikeforge.checks import check_time_major
from spikeforge.functional.relpsp import Impl
from spikeforge.losses.conversion import activation_constraint_loss, weight_sum_loss, weight_sums
from spikeforge.methods.base import Method, StepOutput
from spikeforge.neurons.relpsp import MinPool2d, ReLPSPConv2d, ReLPSPLinear, ReLPSPNetwork
from spikeforge.registry import METHODS
from spikeforge.train.distributed import sum_over_group, unwrap

_WEIGHTED = (nn.Linear, nn.Conv2d)
_SUPPORTED = "Linear/Conv2d without bias, ReLU, MaxPool2d (kernel = stride), Flatten, Dropout, Identity"


def static_frame(x: Tensor) -> Tensor:
    """The one frame [B, ...] of a time-major input [1, B, ...] (the hybrid methods read static intensities)."""
    check_time_major(x, "hybrid input", (3, 4, 5), "[1, B, features] or [1, B, C, H, W]")
    if x.shape[0] != 1:
        raise ValueError(
            f"hybrid input: expected one static frame [1, B, ...], got T = {x.shape[0]}; "
            "use the encoder {name: direct, steps: 1}"
        )
    return x[0]


def ann_forward(ann: nn.Module, x: Tensor) -> tuple[Tensor, list[tuple[str, Tensor]]]:
    """Logits and the pre-activations u of every weighted layer (eq. 1), by layer name; `ann` may be DDP-wrapped
    (the forward goes through the wrapper, so its gradients are averaged across ranks)."""
    preactivations: list[tuple[str, Tensor]] = []
    hooks = [m.register_forward_hook(lambda _m, _inputs, u, name=name: preactivations.append((name, u))) for name, m in weighted_layers(unwrap(ann))]
    try:
        logits = ann(x)
    finally:
        for hook in hooks:
            hook.remove()
    return logits, preactivations


def weighted_layers(ann: nn.Sequential) -> list[tuple[str, nn.Module]]:
    """The ANN's Linear / Conv2d layers, in order, by name."""
    return [(name, m) for name, m in ann.named_children() if isinstance(m, _WEIGHTED)]


def _stem_length(modules: list[tuple[str, nn.Module]], analog_layers: int) -> int:
    """Number of leading modules that stay analog: `analog_layers` weighted layers plus their ReLU / pooling."""
    if analog_layers == 0:
        return 0
    seen = 0
    for index, (_, module) in enumerate(modules):
        if isinstance(module, _WEIGHTED):
            if seen == analog_layers:
                return index
            seen += 1
    raise ValueError(f"analog_layers={analog_layers} leaves no spiking layer: the ANN has only {seen} weighted layers")


def _check_mappable(name: str, module: nn.Module) -> None:
    """Raise ValueError naming the layer when the conversion (θ_s = θ_a, ϑ = 1) cannot map it exactly."""
    why = None
    if isinstance(module, _WEIGHTED) and module.bias is not None:
        why = "it has a bias, which ReL-PSP neurons (eq. 2) do not have; build it with bias=False"
    elif isinstance(module, nn.Conv2d):
        if module.groups != 1 or module.dilation != (1, 1) or module.padding_mode != "zeros":
            why = "only groups=1, dilation=1 and zero padding are supported"
        elif isinstance(module.padding, str) or len(set(module.padding)) != 1 or len(set(module.stride)) != 1 \
                or module.kernel_size[0] != module.kernel_size[1]:
            why = "only square kernels with one integer stride and padding are supported"
    elif isinstance(module, nn.MaxPool2d):
        if module.stride not in (module.kernel_size, None) or module.padding != 0 or module.dilation != 1 \
                or not isinstance(module.kernel_size, int):
            why = "only non-overlapping pooling (kernel = stride, no padding) maps to min-pooling"
    elif not isinstance(module, (nn.Linear, nn.ReLU, nn.Flatten, nn.Dropout, nn.Identity)):
        why = f"no ReL-PSP counterpart (supported: {_SUPPORTED})"
    if why:
        raise ValueError(f"cannot convert layer {name!r} ({type(module).__name__}) to a ReL-PSP SNN: {why}")


def convert_to_snn(
    ann: nn.Sequential,
    force_firing: bool = True,
    analog_layers: int = 0,
    threshold: float = 1.0,
    min_denominator: float = 0.1,
    impl: Impl = "fast",
    output_threshold: float | None = None,
    hidden_thresholds: list[float] | None = None,
    input_window: float = 1.0,
) -> ReLPSPNetwork:
    """ANN → one-spike SNN with θ_s = θ_a and ϑ = `threshold` (§2.2, hybrid paper), ϑ_out = `output_threshold`
    (default `threshold`) for the last layer, ϑ_l = `hidden_thresholds` (one per hidden spiking layer; default
    `threshold`) with the layers' windows widened to match, and the analog stem's outputs coded over [0, `input_window`]
    (`ReLPSPNetwork.set_thresholds`); the ANN is left unchanged."""
    if not isinstance(ann, nn.Sequential):
        raise ValueError(f"convert_to_snn: expected an nn.Sequential ANN, got {type(ann).__name__}")
    modules = list(ann.named_children())
    stem_end = _stem_length(modules, analog_layers)
    analog = nn.Sequential(*[copy.deepcopy(m) for _, m in modules[:stem_end]]) if stem_end else None
    layers: list[nn.Module] = []
    layer = 0
    for name, module in modules[stem_end:]:
        _check_mappable(name, module)
        if isinstance(module, nn.Linear):
            layer += 1
            snn_layer = ReLPSPLinear(module.in_features, module.out_features, layer, threshold, min_denominator, impl)
        elif isinstance(module, nn.Conv2d):
            layer += 1
            snn_layer = ReLPSPConv2d(module.in_channels, module.out_channels, module.kernel_size[0], layer,
                                     module.stride[0], module.padding[0], threshold, min_denominator, impl)
        elif isinstance(module, nn.MaxPool2d):
            layers.append(MinPool2d(module.kernel_size))
            continue
        elif isinstance(module, nn.Flatten):
            layers.append(nn.Flatten(module.start_dim, module.end_dim))
            continue
        else:  # ReLU (its image is force firing), Dropout, Identity
            continue
        with torch.no_grad():
            snn_layer.weight.copy_(module.weight)
        layers.append(snn_layer)
    if layer == 0:
        raise ValueError("convert_to_snn: the ANN has no Linear or Conv2d layer to make spiking")
    if output_threshold is not None and output_threshold <= 0:
        raise ValueError(f"convert_to_snn: output_threshold must be > 0, got {output_threshold}")
    if hidden_thresholds is not None and len(hidden_thresholds) != layer - 1:
        raise ValueError(f"convert_to_snn: hidden_thresholds needs {layer - 1} values (one per hidden spiking layer), got {len(hidden_thresholds)}")
    snn = ReLPSPNetwork(layers, force_firing=force_firing, analog=analog)
    hidden = list(hidden_thresholds) if hidden_thresholds is not None else [threshold] * (layer - 1)
    snn.set_thresholds(hidden + [output_threshold if output_threshold is not None else threshold], input_window)
    return snn


@torch.no_grad()
def calibrate_windows(ann: nn.Sequential, x: Tensor, analog_layers: int) -> tuple[float, list[float]]:
    """(c_0, [ϑ_l]): the analog stem's largest output and each hidden spiking layer's largest pre-activation u on x,
    at least 1. With them no analog output is clipped and u_j ≤ ϑ_l holds on x (the full contribution property's
    condition), where the paper's c_0 = ϑ = 1 needs the activation constraint (eq. 11) to hold."""
    _, pre = ann_forward(ann, x)
    peaks = [max(1.0, u.max().item()) for _, u in pre]
    return (peaks[analog_layers - 1] if analog_layers else 1.0), peaks[analog_layers:-1]


@torch.no_grad()
def calibrate_output_threshold(ann: nn.Sequential, snn: ReLPSPNetwork, x: Tensor,
                               quantiles: tuple[float, ...] = (0.9, 0.99, 0.999, 1.0)) -> float:
    """ϑ_out among 1 and max(1, quantile q of the output u on x) whose earliest spikes agree most with the ANN's argmax."""
    logits, pre = ann_forward(ann, x)
    u_out = pre[-1][1].flatten()
    candidates = sorted({1.0, *(max(1.0, u_out.quantile(q).item()) for q in quantiles)})
    output_layer = snn.spiking_layers()[-1]
    original, agreement = output_layer.threshold, []
    target = logits.argmax(dim=1)
    for theta in candidates:
        output_layer.threshold = theta
        agreement.append((snn(x).argmin(dim=1) == target).float().mean().item())
    output_layer.threshold = original
    return candidates[agreement.index(max(agreement))]  # ties go to the smallest ϑ_out


class HybridANN(Method):
    """Stage 1: the ANN with L = CE + λ_w·L_wsum + λ_a·L_acti (eq. 9); λ_w = λ_a = 0 gives the CE-only baseline.

    `project_weight_sums`: after every optimiser step each spiking unit's weights are also moved onto
    Σ_i w_ij = 1 (the Euclidean projection: w_ij += (1 − Σ_i w_ij)/n), so the weight-sum constraint holds
    exactly instead of only as far as the penalty enforces it (not in the paper; off by default).
    """

    def __init__(self, lambda_w: float, lambda_a: float | list[float], analog_layers: int, project_weight_sums: bool = False) -> None:
        self.lambda_w, self.lambda_a, self.analog_layers = lambda_w, lambda_a, analog_layers
        self.project_weight_sums = project_weight_sums

    def _lambda_a(self, layers: int) -> list[float]:
        if isinstance(self.lambda_a, (int, float)):
            return [float(self.lambda_a)] * layers
        if len(self.lambda_a) != layers:
            raise ValueError(f"hybrid_ann: lambda_a has {len(self.lambda_a)} weights but the ANN has {layers} weighted layers; "
                             "give one number, or one per weighted layer")
        return [float(v) for v in self.lambda_a]

    def step(self, model: nn.Module, x: Tensor, y: Tensor) -> StepOutput:
        logits, pre = ann_forward(model, static_frame(x))
        ce = F.cross_entropy(logits, y)
        spiking = [m.weight for _, m in weighted_layers(unwrap(model))[self.analog_layers :]]
        l_wsum = weight_sum_loss(spiking)
        total = sum_over_group if isinstance(model, DistributedDataParallel) and model.training else None  # U′ of the global batch
        per_layer = [activation_constraint_loss([u], total) for _, u in pre]  # eq. (11), one term per layer
        l_acti = torch.stack(per_layer).sum()
        loss = ce + self.lambda_w * l_wsum + sum(w * term for w, term in zip(self._lambda_a(len(pre)), per_layer))
        extras = {"ce": ce.item(), "l_wsum": l_wsum.item(), "l_acti": l_acti.item()}
        return StepOutput(loss=loss, logits=logits.detach(), extras=extras)

    def predict(self, model: nn.Module, x: Tensor) -> Tensor:
        return model(static_frame(x)).unsqueeze(0)

    def after_step(self, model: nn.Module) -> None:
        super().after_step(model)
        if self.project_weight_sums:
            project_unit_weight_sums([m.weight for _, m in weighted_layers(unwrap(model))[self.analog_layers :]])


class STDBP(Method):
    """Stage 2: CE on −t_out of the one-spike SNN, gradients by STDBP [14]; silent-neuron fractions in extras.

    `project_weight_sums`: keep Σ_i w_ij = 1 after every step, as the conversion assumed (not in the paper). The STDBP
    gradient ∂t_j/∂w_ij = (t_i − t_j)/Σw has a part common to all of a neuron's inputs, (u_j − ϑ_l) for a neuron
    that fires after its last input; with calibrated windows (ϑ_l ≫ 1) it dominates and moves Σw away from 1, which
    shifts every later window; the projection removes exactly that part.
    """

    def __init__(self, project_weight_sums: bool = False) -> None:
        self.project_weight_sums = project_weight_sums

    def step(self, model: nn.Module, x: Tensor, y: Tensor) -> StepOutput:
        t_out, stats = model(static_frame(x), stats=True)  # through forward: a DDP wrapper averages the gradients
        loss = F.cross_entropy(-t_out, y)
        return StepOutput(loss=loss, logits=(-t_out).detach(), extras=stats)

    def predict(self, model: nn.Module, x: Tensor) -> Tensor:
        return (-model(static_frame(x))).unsqueeze(0)

    def after_step(self, model: nn.Module) -> None:
        super().after_step(model)
        if self.project_weight_sums:
            project_unit_weight_sums([m.weight for m in unwrap(model).spiking_layers()])


def project_unit_weight_sums(weights: list[Tensor]) -> None:
    """Move each unit's weights onto Σ_i w_ij = 1 in place: the Euclidean projection w_ij += (1 − Σ_i w_ij)/n."""
    with torch.no_grad():
        for w in weights:
            excess = (weight_sums(w) - 1.0) / w[0].numel()
            w.sub_(excess.view(-1, *([1] * (w.dim() - 1))))


@METHODS.register("hybrid_ann")
def hybrid_ann(lambda_w: float = 1e-2, lambda_a: float | list[float] = 1e-4, analog_layers: int = 0,
               project_weight_sums: bool = False) -> HybridANN:
    """Stage-1 method: constrained ANN training (eqs. 9–11); `lambda_a` is one weight or one per weighted layer."""
    if lambda_w < 0 or min(lambda_a if isinstance(lambda_a, (list, tuple)) else [lambda_a]) < 0 or analog_layers < 0:
        raise ValueError(f"hybrid_ann: lambda_w, lambda_a and analog_layers must be >= 0, got {lambda_w}, {lambda_a}, {analog_layers}")
    return HybridANN(lambda_w, lambda_a, analog_layers, bool(project_weight_sums))


@METHODS.register("stdbp")
def stdbp(project_weight_sums: bool = False) -> STDBP:
    """Stage-2 method: timing-based backprop of the one-spike SNN; optionally with Σ_i w_ij = 1 kept exact."""
    return STDBP(bool(project_weight_sums))
