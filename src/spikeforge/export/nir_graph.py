"""Export a spikeforge model to a NIR graph whose documented semantics give the model's spikes.

The model is read as the chain of layers its forward pass calls (recorded with hooks, then
replayed and compared with the model's own output, so a forward that does more than chain its
layers is refused). Each layer becomes NIR nodes: `SpikingLinear` / `SpikingConv` → Linear /
Affine / Conv1d / Conv2d + LIF / IF / CubaLIF; a kernel over time (the keyword-spotting net)
→ one Delay + Conv1d/Conv2d branch per time tap, summed by the neuron; `Readout` → Affine
(+ LI when it integrates); average pooling → AvgPool2d; `Flatten` → Flatten; and, for the
noise-trained networks after `convert(model, mode="lif")`, Linear / Conv2d (+ BatchNorm folded
in) + `NoisyLIF` → LIF; the spikemax networks' SRM layers → synapse, Delay + CubaLI (the alpha
response), Threshold with a Delay + CubaLI + Scale feedback (the refractory kernel), and Delay +
Scale pairs for fractional axonal delays (`_srm_nodes`). Thresholds and input gains are folded into the weights
(`nir_neurons`), so every neuron has v_threshold = 1 and v_reset = 0. What has no exact NIR
form is refused with one line naming the layer, the reason, and what to change. The "snn-mlir"
form writes kernels over time as recurrent delay lines (`_delay_line`) and dilations as zeros in
the kernels, and refuses SRM layers (`SNN_MLIR_NO_SRM`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import nir
import numpy as np
import torch
from torch import nn

from spikeforge.export.nir_neurons import Neuron, check_dt, neuron_node
from spikeforge.layers import Flatten, Pool, Readout, SpikingConv, SpikingLinear, WordReadout
from spikeforge.layers.base import SpikingLayer
from spikeforge.models.shorthand import SRMLayer, SumPool
from spikeforge.neurons.noisy import NoisyLIF

#: Forms of the file, all exact by NIR's equations: "nir" (r = τ/dt, AvgPool2d: snnTorch), "norse" (r = 1
#: with the gain dt/τ in the weights, SumPool2d with 1/k² in the next weights: Norse 1.1 ignores r of LIF
#: nodes and has no AvgPool2d) and "snn-mlir" ("nir" with dilations as zeros in the kernels and time taps
#: as a recurrent delay line: snn-mlir 1.0 has no Delay node, no dilation and no branches; `_delay_line`).
COMPATS = ("nir", "norse", "snn-mlir")

#: A reset NIR can express, for the refusal messages.
DEPLOY_HINT = "train with reset 'zero' (a reset NIR expresses: e.g. `--set model.reset=zero`, recipe nir_demo)"
#: Why an SRM layer has no snn-mlir form (its front end: `snn_mlir/_graph.py`, `snn_mlir/nodes/`).
SNN_MLIR_NO_SRM = ("SRM neurons cannot be written in a form snn-mlir 1.0 accepts: their refractory kernel feeds the spikes back "
                   "through two first-order filters into a potential that is never reset, while snn-mlir's only feedback is a "
                   "neuron ⇄ synapse pair into a neuron that resets v to 0 (which leaves one filter, CubaLIF's current); "
                   "export the default form (Delay, CubaLI, Threshold, Scale), which runs by NIR's equations")
_SPIKEFORGE_KINDS = (SpikingLayer, Readout, Pool, Flatten, NoisyLIF, SRMLayer)
_TORCH_KINDS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.AvgPool2d, nn.Flatten, nn.Identity, nn.Dropout)


@dataclass
class _Synapse:
    """A weighted map with its time taps: output = Σ_k conv_k(x[n − delay_k]) + bias; `kind` is linear / conv1d / conv2d."""

    kind: str
    weights: list[np.ndarray]  # one per tap, output channel first
    delays: list[int]  # steps, one per tap
    bias: np.ndarray | None
    in_shape: tuple[int, ...]
    conv: dict = field(default_factory=dict)  # stride, padding, dilation

    def scale_inputs(self, factor: float) -> None:
        """Multiply the weights (not the bias) by `factor`: the input arrives scaled by 1/factor."""
        self.weights = [(w * factor).astype(np.float32) for w in self.weights]

    def scale(self, factor: np.ndarray) -> None:
        """Multiply output channel i's weights and bias by factor[i]."""
        view = factor.reshape((-1,) + (1,) * (self.weights[0].ndim - 1))
        self.weights = [(w * view).astype(np.float32) for w in self.weights]
        if self.bias is not None:
            self.bias = (self.bias * factor).astype(np.float32)


@dataclass
class _SRM:
    """An SRM neuron (eqs. (1)–(2), spikemax paper) after its synapse; `gain` scales the synaptic input, `delay` is per neuron (steps) or None."""

    tau_s: float
    tau_r: float
    threshold: float
    gain: float
    delay: np.ndarray | None


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy().copy()


def _leaves(model: nn.Module) -> dict[nn.Module, str]:
    """{layer: name} of the exportable layers of `model`; a leaf module of any other kind is refused by name."""
    leaves, seen = {}, set()
    for name, module in model.named_modules():
        if any(name.startswith(p + ".") for p in seen):
            continue
        if isinstance(module, NoisyLIF) and module.mode != "lif":
            raise ValueError(f"layer {name!r} (NoisyLIF) cannot be exported to NIR: in mode {module.mode!r} it draws noise every step; "
                             f"export after spikeforge.neurons.noisy.convert(model, mode='lif') (the plain LIF of eqs. (1)–(3); "
                             f"from the command line: spikeforge export RUN --convert lif)")
        if isinstance(module, WordReadout):
            raise ValueError(f"layer {name!r} (WordReadout) cannot be exported to NIR: its `_unknown_` score is the log-sum-exp of "
                             f"{module.n_words} word rows, which no NIR node computes; train without model.unknown_words to export")
        if isinstance(module, _SPIKEFORGE_KINDS + _TORCH_KINDS):
            leaves[module] = name
            seen.add(name)
        elif not any(True for _ in module.children()):
            raise ValueError(f"layer {name or '<model>'!r} ({type(module).__name__}) cannot be exported to NIR: {_unknown_reason(module)}")
    return leaves


def _unknown_reason(module: nn.Module) -> str:
    kind = type(module).__name__
    if "relpsp" in kind.lower():
        return "ReL-PSP neurons (one spike per neuron, a linearly rising post-synaptic potential) have no NIR primitive; export the ANN before conversion instead"
    return f"{kind} has no NIR counterpart (exportable: spikeforge's spiking, readout, pooling and flatten layers, SRM layers, Linear, Conv1d/2d, BatchNorm, AvgPool2d, NoisyLIF)"


def _trace(model: nn.Module, input_shape: tuple[int, ...]) -> list[tuple[str, nn.Module, tuple[int, ...], tuple[int, ...]]]:
    """(name, layer, per-sample input shape, output shape) of each layer call, from a forward pass on spikes."""
    names, calls, hooks = _leaves(model), [], []

    def hook(module, args, output):
        x = args[0]
        skip = 2 if isinstance(module, _SPIKEFORGE_KINDS) else 1  # [T, B, ...] or [T·B, ...]
        calls.append((names[module], module, tuple(x.shape[skip:]), tuple(output.shape[skip:])))

    hooks = [m.register_forward_hook(hook) for m in names]
    x = (torch.rand(4, 2, *input_shape, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    try:
        with torch.no_grad():
            expected = model(x)
    finally:
        for h in hooks:
            h.remove()
    if not calls:
        raise ValueError(f"{type(model).__name__}: no exportable layer runs in its forward pass")
    y = x
    with torch.no_grad():
        for _, module, _, _ in calls:
            y = module(y) if isinstance(module, _SPIKEFORGE_KINDS) else module(y.flatten(0, 1)).unflatten(0, y.shape[:2])
    if y.shape != expected.shape or not torch.allclose(y, expected, atol=1e-5):
        raise ValueError(f"{type(model).__name__} cannot be exported to NIR: its forward pass is not the chain of its layers "
                         f"(residual branches or operations between layers); the exporter writes feed-forward chains")
    return calls


def _check_spiking(name: str, layer: SpikingLayer) -> None:
    """Refuse what NIR cannot express exactly, with the layer's name, the reason and the fix."""
    where = f"layer {name!r} ({type(layer).__name__}) cannot be exported to NIR"
    if layer.lateral:
        raise ValueError(f"{where}: its lateral reset W·Wᵀ·S[n−1] couples the neurons' resets, and NIR has no reset connections")
    if layer.recurrent is not None:
        raise ValueError(f"{where}: its recurrent pool feedback V·S[n−1] inside the neuron has no NIR primitive")
    if layer.neuron.cfg.reset == "subtract":
        raise ValueError(f"{where}: NIR neurons reset to v_reset, and its subtractive reset (U − b·‖W‖² after a spike) has no exact NIR form; {DEPLOY_HINT}")
    if layer.neuron.cfg.reset == "none":
        raise ValueError(f"{where}: a neuron that never resets has no NIR form (NIR neurons reset to v_reset); {DEPLOY_HINT}")
    if isinstance(layer, SpikingConv) and layer.spatial_dims == 3:
        raise ValueError(f"{where}: NIR 1.0 has no Conv3d")
    if isinstance(layer, SpikingConv) and layer.time_kernel > 1 and any(s != 1 for s in layer.stride):
        raise ValueError(f"{where}: a kernel over time is written as delayed branches, which needs stride 1")


def _spiking_synapse(layer: SpikingLayer, in_shape: tuple[int, ...]) -> _Synapse:
    bias = _np(layer.bias) if layer.bias is not None else None
    if isinstance(layer, SpikingLinear):
        return _Synapse("linear", [_np(layer.weight)], [0], bias, in_shape)
    w = _np(layer.weight)  # [C_out, C_in, K_t, *kernel]; tap k sees x[n − (K_t − 1 − k)·d_t]
    taps = w.shape[2]
    conv = {"stride": layer.stride, "padding": layer.padding, "dilation": layer.dilation}
    return _Synapse(f"conv{layer.spatial_dims}d", [w[:, :, k] for k in range(taps)],
                    [(taps - 1 - k) * layer.time_dilation for k in range(taps)], bias, in_shape, conv)


def _torch_synapse(module: nn.Module, in_shape: tuple[int, ...]) -> _Synapse:
    bias = _np(module.bias) if module.bias is not None else None
    if isinstance(module, nn.Linear):
        return _Synapse("linear", [_np(module.weight)], [0], bias, in_shape)
    if module.groups != 1 or isinstance(module.padding, str) or module.padding_mode != "zeros":
        raise ValueError(f"{type(module).__name__}: the exporter needs groups = 1 and integer zero padding")
    return _Synapse(f"conv{len(module.kernel_size)}d", [_np(module.weight)], [0], bias, in_shape,
                    {"stride": module.stride, "padding": module.padding, "dilation": module.dilation})


def _fold_batch_norm(name: str, bn: nn.Module, previous) -> None:
    """BN(y) = γ·(y − μ)/√(σ² + ε) + β folded into the preceding synapse (eval statistics)."""
    if not isinstance(previous, _Synapse):
        raise ValueError(f"layer {name!r} (BatchNorm) cannot be exported to NIR: it must follow a Linear or Conv layer to be folded into it")
    scale = _np(bn.weight) / np.sqrt(_np(bn.running_var) + bn.eps)
    bias = previous.bias if previous.bias is not None else np.zeros(len(scale))
    previous.scale(scale)
    previous.bias = ((bias - _np(bn.running_mean)) * scale + _np(bn.bias)).astype(np.float32)


def _ops(model: nn.Module, input_shape: tuple[int, ...]) -> list:
    """The chain as (op, out_shape) pairs: _Synapse, (Neuron, threshold per channel, gain), ("pool", k, s), ("flatten", in_shape)."""
    ops: list = []
    for name, module, in_shape, out_shape in _trace(model, input_shape):
        if isinstance(module, SpikingLayer):
            _check_spiking(name, module)
            n = module.neuron
            beta = float(n.beta.detach())
            b = _np(n.threshold)
            q = (_np(module.weight.flatten(1)) ** 2).sum(1) + n.cfg.eps if module.normalize_threshold else 1.0
            c = 1.0 - beta if n.cfg.input_scale == "one_minus_beta" else 1.0
            ops += [(_spiking_synapse(module, in_shape), out_shape), ((Neuron(beta, n.syn_decay), b * q, c), out_shape)]
        elif isinstance(module, SRMLayer):
            n, gain = module.neuron, 1.0
            if isinstance(module.synapse, SumPool):
                gain = module.synapse.weight
                ops.append((("sumpool", np.array((module.synapse.size,) * 2)), out_shape))
            else:
                if isinstance(module.synapse, nn.Linear) and len(in_shape) > 1:  # the layer flattens [C, H, W] itself
                    ops.append((("flatten", in_shape), (int(np.prod(in_shape)),)))
                    in_shape = (int(np.prod(in_shape)),)
                ops.append((_torch_synapse(module.synapse, in_shape), out_shape))
            delay = None if module.delay is None else np.broadcast_to(_np(module.delay.delay), out_shape).copy()
            ops.append((_SRM(n.tau_s, n.tau_r, n.threshold, gain, delay), out_shape))
        elif isinstance(module, NoisyLIF):
            if not ops or not isinstance(ops[-1][0], _Synapse):
                raise ValueError(f"layer {name!r} (NoisyLIF) cannot be exported to NIR: it must follow a Linear or Conv layer")
            ops.append(((Neuron(float(module.lam)), np.full(out_shape[0], float(module.threshold)), 1.0), out_shape))
        elif isinstance(module, Readout):
            if len(in_shape) > 1:  # the readout flattens [C, *S] itself
                ops.append((("flatten", in_shape), (int(np.prod(in_shape)),)))
            w = _np(module.weight)
            scale = (w * w).sum(1) + module.eps if module.normalized else np.ones(w.shape[0])
            ops.append((_Synapse("linear", [w / scale[:, None]], [0], _np(module.bias), (w.shape[1],)), out_shape))
            if module.integrate is not None:
                ops.append(((Neuron(float(module.integrate), spiking=False), np.ones(out_shape[0]), 1.0), out_shape))
        elif isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            ops.append((_torch_synapse(module, in_shape), out_shape))
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            _fold_batch_norm(name, module, ops[-1][0] if ops else None)
        elif isinstance(module, (Pool, nn.AvgPool2d)):
            _pool(name, module, ops, out_shape)
        elif isinstance(module, (Flatten, nn.Flatten)):
            if isinstance(module, nn.Flatten) and (module.start_dim, module.end_dim) != (1, -1):
                raise ValueError(f"layer {name!r} (Flatten) cannot be exported to NIR: only flattening all axes of a sample is supported")
            if len(in_shape) > 1:
                ops.append((("flatten", in_shape), out_shape))
    return ops


def _pool(name: str, module: nn.Module, ops: list, out_shape: tuple[int, ...]) -> None:
    kind = module.kind if isinstance(module, Pool) else "avg"
    dims = module.spatial_dims if isinstance(module, Pool) else 2
    if kind != "avg" or dims != 2 or (isinstance(module, nn.AvgPool2d) and (np.any(np.asarray(module.padding)) or module.ceil_mode)):
        raise ValueError(f"layer {name!r} ({type(module).__name__}) cannot be exported to NIR: NIR 1.0 has 2-D average and sum pooling "
                         f"without padding only, not {kind} pooling over {dims} axes")
    pair = lambda v: np.array(v if isinstance(v, (tuple, list)) else (v, v))  # noqa: E731
    ops.append((("pool", pair(module.kernel_size), pair(module.stride)), out_shape))


def _weighted_node(kind: str, w: np.ndarray, bias: np.ndarray | None, in_shape: tuple[int, ...], conv: dict) -> nir.NIRNode:
    """The NIR Linear / Affine / Conv1d / Conv2d node of one weight tensor."""
    if kind == "linear":
        return nir.Affine(w, bias) if bias is not None else nir.Linear(w)
    b = bias if bias is not None else np.zeros(w.shape[0], dtype=np.float32)
    if kind == "conv1d":
        return nir.Conv1d(in_shape[1], w, conv["stride"][0], conv["padding"][0], conv["dilation"][0], 1, b)
    return nir.Conv2d(tuple(in_shape[1:]), w, tuple(conv["stride"]), tuple(conv["padding"]), tuple(conv["dilation"]), 1, b)


def _undilated(syn: _Synapse) -> _Synapse:
    """The same synapse with dilation 1: a kernel dilated by d is the kernel with d − 1 zeros between its taps (exact)."""
    if syn.kind == "linear" or all(d == 1 for d in syn.conv["dilation"]):
        return syn
    d = tuple(syn.conv["dilation"])
    weights = []
    for w in syn.weights:
        spread = np.zeros(w.shape[:2] + tuple((k - 1) * di + 1 for k, di in zip(w.shape[2:], d)), dtype=np.float32)
        spread[(slice(None), slice(None), *(slice(None, None, di) for di in d))] = w
        weights.append(spread)
    return _Synapse(syn.kind, weights, syn.delays, syn.bias, syn.in_shape, {**syn.conv, "dilation": (1,) * len(d)})


def _delay_line(key: str, syn: _Synapse, dt: float) -> tuple[dict[str, nir.NIRNode], list[tuple[str, str]], list[str], list[str]]:
    """A synapse with time taps without Delay nodes: input → `.line.in` → `.line` ⇄ `.line.shift`, `.line` → one conv.

    `.line` is S = max delay + 1 slots of the input (S·C channels) held by pass-through LI neurons
    (τ = dt, r = 1: v[n] = I[n]); `.line.in` writes x[n] into slot 0 and the recurrent `.line.shift`
    moves slot j − 1 into slot j. The neuron → synapse edge of that two-node cycle carries the
    previous step (how nirtorch and snn-mlir read a recurrent edge), so slot j holds x[n − j], and
    the conv over the S·C channels with tap k's weights on slot `delays[k]` is Σ_k W_k·x[n − delays[k]].
    """
    channels, slots = syn.in_shape[0], max(syn.delays) + 1
    ones = (1,) * (len(syn.in_shape) - 1)
    write, shift = np.zeros((slots * channels, channels)), np.zeros((slots * channels, slots * channels))
    write[:channels] = np.eye(channels)
    shift[channels:, :-channels] = np.eye((slots - 1) * channels)
    line_shape = (slots * channels, *syn.in_shape[1:])
    w = np.zeros((syn.weights[0].shape[0], slots * channels, *syn.weights[0].shape[2:]), dtype=np.float32)
    for tap, delay in zip(syn.weights, syn.delays):
        w[:, delay * channels : (delay + 1) * channels] += tap
    unit = {"stride": ones, "padding": (0,) * len(ones), "dilation": ones}
    full = lambda v: np.full(line_shape, v, dtype=np.float32)  # noqa: E731
    nodes = {
        f"{key}.line.in": _weighted_node(syn.kind, write.reshape(write.shape + ones).astype(np.float32), None, syn.in_shape, unit),
        f"{key}.line": nir.LI(tau=full(dt), r=full(1.0), v_leak=full(0.0)),
        f"{key}.line.shift": _weighted_node(syn.kind, shift.reshape(shift.shape + ones).astype(np.float32), None, line_shape, unit),
        key: _weighted_node(syn.kind, w, syn.bias, line_shape, syn.conv),
    }
    edges = [(f"{key}.line.in", f"{key}.line"), (f"{key}.line", f"{key}.line.shift"), (f"{key}.line.shift", f"{key}.line"), (f"{key}.line", key)]
    return nodes, edges, [f"{key}.line.in"], [key]


def _synapse_nodes(key: str, syn: _Synapse, dt: float, compat: str) -> tuple[dict[str, nir.NIRNode], list[tuple[str, str]], list[str], list[str]]:
    """Nodes and inner edges of a synapse; the names fed by the previous node (`heads`) and feeding the next one (`tails`)."""
    if compat == "snn-mlir":
        syn = _undilated(syn)
        if any(syn.delays):
            return _delay_line(key, syn, dt)
    nodes, edges, heads, tails = {}, [], [], []
    for k, (w, delay) in enumerate(zip(syn.weights, syn.delays)):
        name = key if len(syn.weights) == 1 else f"{key}.tap{k}"
        nodes[name] = _weighted_node(syn.kind, w, syn.bias if k == 0 else None, syn.in_shape, syn.conv)
        if delay:
            nodes[f"{name}.delay"] = nir.Delay(np.full(syn.in_shape, delay * dt, dtype=np.float32))
            edges.append((f"{name}.delay", name))
            heads.append(f"{name}.delay")
        else:
            heads.append(name)
        tails.append(name)
    return nodes, edges, heads, tails


def _srm_nodes(key: str, srm: _SRM, shape: tuple[int, ...], dt: float, nodes: dict, edges: list, tails: list[str]) -> list[str]:
    """Add an SRM neuron's nodes; returns the nodes the next layer reads.

    The alpha response (ε * I)[n] = (e/τ_s)·x2[n], x1[n] = a·x1[n−1] + I[n], x2[n] = a·x2[n−1] + a·x1[n−1]
    (a = exp(−1/τ_s)) is a one-step Delay into a CubaLI with both decays a and unit gains, whose
    potential is x2/a, scaled by (e/τ_s)·a. The refractory term κ·z2 (κ = −2ϑe/τ_r, z driven by the
    output spikes, decay b = exp(−1/τ_r)) is the same chain fed back from the Threshold ϑ. A delay
    d = k + f per neuron is (1 − f)·x[n − k] + f·x[n − k − 1]: two Delay + Scale branches.
    """
    full = lambda v: np.broadcast_to(np.asarray(v, dtype=np.float32), shape).copy()  # noqa: E731

    def alpha(name: str, tau: float, scale: float, source: list[str]) -> str:
        decay = math.exp(-1.0 / tau)
        tau_nir = dt / (1.0 - decay)
        nodes[f"{name}.delay"] = nir.Delay(full(dt))
        nodes[name] = nir.CubaLI(tau_syn=full(tau_nir), tau_mem=full(tau_nir), r=full(tau_nir / dt), v_leak=full(0.0), w_in=full(tau_nir / dt))
        nodes[f"{name}.scale"] = nir.Scale(full(scale * decay))
        edges.extend([(t, f"{name}.delay") for t in source] + [(f"{name}.delay", name), (name, f"{name}.scale")])
        return f"{name}.scale"

    spike = f"{key}.spike"
    nodes[spike] = nir.Threshold(full(srm.threshold))
    edges.append((alpha(f"{key}.psp", srm.tau_s, srm.gain * math.e / srm.tau_s, tails), spike))
    edges.append((alpha(f"{key}.refractory", srm.tau_r, -2 * srm.threshold * math.e / srm.tau_r, [spike]), spike))
    if srm.delay is None or not np.any(srm.delay):
        return [spike]
    whole = np.floor(srm.delay)
    branches = [(f"{key}.axon", whole, 1.0 - (srm.delay - whole))]
    if np.any(srm.delay != whole):
        branches.append((f"{key}.axon.next", whole + 1, srm.delay - whole))
    out = []
    for name, steps, weight in branches:
        nodes[name], nodes[f"{name}.scale"] = nir.Delay(full(steps * dt)), nir.Scale(full(weight))
        edges.extend([(spike, name), (name, f"{name}.scale")])
        out.append(f"{name}.scale")
    return out


def to_nir(model: nn.Module, input_shape: tuple[int, ...], *, dt: float = 1e-3, compat: str = "nir") -> nir.NIRGraph:
    """The NIR graph of `model` for per-sample, per-step input `input_shape`, time step `dt` seconds (`metadata["dt"]`), in form `compat`."""
    dt = check_dt(dt)
    if compat not in COMPATS:
        raise ValueError(f"compat must be one of {COMPATS}, got {compat!r}")
    resistance = "1" if compat == "norse" else "tau/dt"
    training = model.training
    model.eval()
    try:
        ops = _ops(model, tuple(input_shape))
    finally:
        model.train(training)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input({"input": np.array(input_shape)})}
    edges: list[tuple[str, str]] = []
    tails, pooled = ["input"], 1.0  # pooled: the sum pools' 1/k² still to fold into the next synapse
    for i, (op, out_shape) in enumerate(ops):
        if isinstance(op, _Synapse):
            op.scale_inputs(pooled)
            pooled = 1.0
            following = ops[i + 1][0] if i + 1 < len(ops) else None
            if isinstance(following, tuple) and isinstance(following[0], Neuron):
                neuron, threshold, gain = following
                if np.any(np.asarray(threshold) <= 0):
                    raise ValueError(f"layer {i + 1}: a threshold ≤ 0 cannot be folded into the weights (every input would fire)")
                factor = neuron_node(neuron, out_shape, dt, resistance)[1]
                op.scale(np.broadcast_to(gain * factor / np.asarray(threshold, dtype=np.float64), (out_shape[0],)))
            syn_nodes, syn_edges, heads, new_tails = _synapse_nodes(f"{i}.synapse", op, dt, compat)
            nodes.update(syn_nodes)
            edges += syn_edges + [(t, h) for t in tails for h in heads]
            tails = new_tails
            continue
        if isinstance(op, _SRM):
            if compat == "snn-mlir":
                raise ValueError(SNN_MLIR_NO_SRM)
            tails = _srm_nodes(f"{i}.srm", op, out_shape, dt, nodes, edges, tails)
            continue
        if op[0] == "sumpool":
            key = f"{i}.pool"
            nodes[key] = nir.SumPool2d(op[1], op[1], np.zeros(2, dtype=int))
        elif isinstance(op[0], Neuron):
            key = f"{i}.neuron"
            if compat == "snn-mlir" and op[0].beta >= 1.0 and dt != 1.0:
                raise ValueError(f"layer {i} is an IF neuron: snn-mlir 1.0 reads IF's r as the gain per step, with no dt, so the file "
                                 f"means the same to it and to NIR's equations (v += dt·r·I) only at dt = 1; export with --dt 1")
            nodes[key] = neuron_node(op[0], out_shape, dt, resistance)[0]
        elif op[0] == "pool":
            key = f"{i}.pool"
            if compat == "norse":
                nodes[key] = nir.SumPool2d(op[1], op[2], np.zeros(2, dtype=int))
                pooled /= float(np.prod(op[1]))
            else:
                nodes[key] = nir.AvgPool2d(op[1], op[2], np.zeros(2, dtype=int))
        else:
            key = f"{i}.flatten"
            nodes[key] = nir.Flatten({"input": np.array(op[1])}, start_dim=0, end_dim=-1)
        edges += [(t, key) for t in tails]
        tails = [key]
    if pooled != 1.0:
        raise ValueError("compat='norse' writes average pooling as sum pooling and folds 1/k² into the next synapse; this model has none after its last pool")
    nodes["output"] = nir.Output({"output": np.array(ops[-1][1])})
    edges += [(t, "output") for t in tails]
    meta = {"dt": dt, "spikeforge": {"output_reduction": getattr(model, "output_reduction", "mean"), "compat": compat}}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def export_nir(model: nn.Module, input_shape: tuple[int, ...], path: str | os.PathLike, *, dt: float = 1e-3, compat: str = "nir") -> Path:
    """Write the model's NIR graph to `path` (HDF5, readable by `nir.read`); see `to_nir`."""
    graph = to_nir(model, input_shape, dt=dt, compat=compat)
    nir.write(str(path), graph)
    return Path(path)

