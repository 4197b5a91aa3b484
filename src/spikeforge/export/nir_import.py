"""Build a spikeforge model from a NIR graph, read by NIR's documented semantics at an explicit time step dt.

Accepted: a chain of synapse (Linear / Affine / Conv1d / Conv2d) + neuron (LIF / IF / CubaLIF)
pairs, AvgPool2d / SumPool2d, Flatten, and a final Affine readout (+ LI); a synapse may be a sum of
Delay → Conv branches (a kernel over time, as spikeforge exports it). Neurons become
reset-to-zero LIF layers whose input gain dt·r/τ is folded into the weights. Out-of-range
parameters (τ below one step, i.e. β ∉ [0, 1]; v_leak or v_reset ≠ 0) are refused with one line.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from pathlib import Path

import nir
import numpy as np
import torch
from torch import nn

from spikeforge.export.nir_neurons import check_dt, read_neuron
from spikeforge.layers import Flatten, Pool, Readout, SpikingConv, SpikingLinear

_SYNAPSES = (nir.Linear, nir.Affine, nir.Conv1d, nir.Conv2d)
_NEURONS = (nir.LIF, nir.IF, nir.CubaLIF)


class ImportedNetwork(nn.Sequential):
    """A spikeforge model rebuilt from a NIR graph: a chain of layers with the graph's output reduction."""

    def __init__(self, layers: dict[str, nn.Module], output_reduction: str = "mean") -> None:
        super().__init__(OrderedDict(layers))
        self.output_reduction = output_reduction


def _stages(graph: nir.NIRGraph) -> list[list[list[str]]]:
    """The graph as a chain of stages; a stage is a list of parallel branches (Delay… → node) that the next node sums."""
    succ: dict[str, list[str]] = {k: [] for k in graph.nodes}
    pred: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for src, dst in graph.edges:
        succ[src].append(dst)
        pred[dst].append(src)
    loop = next(((a, b) for a, b in graph.edges if (b, a) in set(graph.edges)), None)
    if loop is not None:
        raise ValueError(f"NIR graph has a recurrent connection {loop[0]!r} ⇄ {loop[1]!r}; spikeforge imports feed-forward chains "
                         f"(a file written with compat 'snn-mlir' holds kernels over time as recurrent delay lines: import the default form)")
    starts = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(starts) != 1:
        raise ValueError(f"NIR graph needs exactly one Input node, found {len(starts)}")
    stages, node, visited = [], starts[0], set()
    while True:
        if not succ[node]:
            raise ValueError(f"NIR graph: node {node!r} leads nowhere (no path to the Output)")
        branches = []
        for head in succ[node]:
            branch = [head]
            while isinstance(graph.nodes[branch[-1]], nir.Delay) and len(succ[branch[-1]]) == 1:
                branch.append(succ[branch[-1]][0])
            branches.append(branch)
        ends = {b[-1] for b in branches}
        joins = {j for b in branches for j in succ[b[-1]]}
        if len(branches) > 1 and len(joins) != 1:
            raise ValueError(f"NIR graph branches at node {node!r} into paths that do not meet at one node; spikeforge imports "
                             f"chains whose only branches are the delayed taps of one synapse")
        node = joins.pop() if len(branches) > 1 else branches[0][-1]
        if node in visited or ends & visited:
            raise ValueError(f"NIR graph has a cycle through {node!r}; spikeforge imports feed-forward chains only")
        visited.update(ends | {node})
        if isinstance(graph.nodes[node], nir.Output):
            if len(branches) > 1:
                raise ValueError("NIR graph: parallel branches must meet at a neuron, not at the Output")
            return stages
        stages.append(branches)
        if len(branches) > 1:
            stages.append([[node]])


def _steps(node: nir.Delay, name: str, dt: float) -> int:
    delay = np.asarray(node.delay, dtype=np.float64).ravel() / dt
    k = int(round(float(delay[0]))) if delay.size else 0
    if delay.size == 0 or not np.allclose(delay, k, atol=1e-4) or k < 0:
        raise ValueError(f"NIR node {name!r}: spikeforge needs one delay per node that is a whole number of steps dt = {dt:g} s")
    return k


def _taps(graph: nir.NIRGraph, branches: list[list[str]], dt: float) -> tuple[nir.NIRNode, list[tuple[int, nir.NIRNode]]]:
    """(first synapse node, [(delay in steps, synapse node)]) of a stage of Delay → synapse branches."""
    taps = []
    for branch in branches:
        nodes = [graph.nodes[k] for k in branch]
        if not isinstance(nodes[-1], _SYNAPSES) or not all(isinstance(n, nir.Delay) for n in nodes[:-1]):
            raise ValueError(f"NIR graph: parallel branch {branch} is not Delay… → Linear/Affine/Conv (a synapse tap)")
        taps.append((sum(_steps(n, k, dt) for k, n in zip(branch, nodes[:-1])), nodes[-1]))
    return taps[0][1], taps


def _ints(v, dims: int) -> tuple[int, ...]:
    return tuple(int(a) for a in np.broadcast_to(np.asarray(v), (dims,)))


def _synapse_layer(name: str, taps: list[tuple[int, nir.NIRNode]], lif: dict) -> SpikingLinear | SpikingConv:
    """A spiking layer from synapse taps (delay in steps, node) and LIF keyword arguments."""
    node = taps[0][1]
    if any(type(t) is not type(node) and not {type(t), type(node)} <= {nir.Linear, nir.Affine} for _, t in taps):
        raise ValueError(f"NIR node {name!r}: the taps of one synapse must be of one kind")
    bias = sum(np.asarray(getattr(t, "bias", 0.0) if getattr(t, "bias", None) is not None else 0.0, dtype=np.float64) for _, t in taps)
    has_bias = bool(np.any(bias != 0))
    weight = np.asarray(node.weight, dtype=np.float32)
    if isinstance(node, (nir.Linear, nir.Affine)):
        if len(taps) > 1 or taps[0][0]:
            raise ValueError(f"NIR node {name!r}: delayed dense synapses have no spikeforge layer (only convolutions have kernels over time)")
        layer = SpikingLinear(weight.shape[1], weight.shape[0], normalize_threshold=False, bias=has_bias, **lif)
        layer.weight.data.copy_(torch.from_numpy(weight))
    else:
        dims = 1 if isinstance(node, nir.Conv1d) else 2
        geometry = [(_ints(t.stride, dims), t.padding if isinstance(t.padding, str) else _ints(t.padding, dims), _ints(t.dilation, dims), t.groups) for _, t in taps]
        if any(g != geometry[0] for g in geometry) or node.groups != 1 or isinstance(node.padding, str) and node.padding != "valid":
            raise ValueError(f"NIR node {name!r}: spikeforge needs groups = 1, integer padding, and the same geometry in every tap")
        delays = sorted({d for d, _ in taps})
        step = math.gcd(*delays) if delays[-1] else 1
        kernel = delays[-1] // step + 1
        stacked = np.zeros((weight.shape[0], weight.shape[1], kernel, *weight.shape[2:]), dtype=np.float32)
        for d, t in taps:
            stacked[:, :, kernel - 1 - d // step] += np.asarray(t.weight, dtype=np.float32)
        stride, padding, dilation, _ = geometry[0]
        padding = (0,) * dims if isinstance(padding, str) else padding
        layer = SpikingConv(weight.shape[1], weight.shape[0], weight.shape[2:], spatial_dims=dims, time_kernel=kernel, time_dilation=step,
                            stride=stride, padding=padding, dilation=dilation, normalize_threshold=False, bias=has_bias, **lif)
        layer.weight.data.copy_(torch.from_numpy(stacked))
    if has_bias:
        layer.bias.data.copy_(torch.from_numpy(bias.astype(np.float32)))
    return layer


def _per_channel(name: str, what: str, values: np.ndarray, channels: int) -> np.ndarray:
    flat = np.asarray(values, dtype=np.float64).reshape(channels, -1)
    if not np.allclose(flat, flat[:, :1], rtol=1e-6, atol=0):
        raise ValueError(f"NIR node {name!r}: {what} differs within a channel; spikeforge has one value per channel")
    return flat[:, 0]


def _spiking(name: str, taps, neuron_name: str, neuron_node: nir.NIRNode, dt: float) -> SpikingLinear | SpikingConv:
    neuron, gain, threshold = read_neuron(neuron_node, neuron_name, dt)
    lif = {"reset": "zero", "nlif": neuron.beta == 1.0 and neuron.syn_decay is None}
    if neuron.syn_decay:
        lif["tau_syn"] = -1.0 / math.log(neuron.syn_decay)
    channels = np.asarray(taps[0][1].weight).shape[0]
    gain = _per_channel(neuron_name, "the input gain dt·r/τ", np.broadcast_to(gain, np.shape(threshold)), channels).copy()
    layer = _synapse_layer(name, taps, lif)
    with torch.no_grad():
        view = (-1,) + (1,) * (layer.weight.dim() - 1)
        layer.weight.mul_(torch.from_numpy(gain).float().view(view))
        if layer.bias is not None:
            layer.bias.mul_(torch.from_numpy(gain).float())
        layer.neuron.beta.fill_(neuron.beta)
        layer.neuron.threshold.copy_(torch.from_numpy(_per_channel(neuron_name, "v_threshold", threshold, channels)).float())
    return layer


def _readout(name: str, node: nir.NIRNode, integrator: tuple[str, nir.NIRNode] | None, dt: float) -> Readout:
    weight = np.asarray(node.weight, dtype=np.float64)
    bias = np.asarray(node.bias, dtype=np.float64) if getattr(node, "bias", None) is not None else np.zeros(weight.shape[0])
    integrate = None
    if integrator is not None:
        neuron, gain, _ = read_neuron(integrator[1], integrator[0], dt)
        gain = np.broadcast_to(gain, (weight.shape[0],))
        weight, bias, integrate = weight * gain[:, None], bias * gain, neuron.beta
    out = Readout(weight.shape[1], weight.shape[0], integrate=integrate)
    out.weight.data.copy_(torch.from_numpy(weight).float())
    out.bias.data.copy_(torch.from_numpy(bias).float())
    return out


def from_nir(graph: nir.NIRGraph, dt: float | None = None) -> ImportedNetwork:
    """Build a spikeforge model from a NIR graph at time step `dt` seconds (default: the graph's `metadata["dt"]`)."""
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    if dt is None:
        if "dt" not in meta:
            raise ValueError("the NIR graph does not state its time step (no metadata['dt']); pass dt in seconds "
                             "(e.g. dt=1e-3 for Norse's default, 1e-4 for snnTorch's)")
        dt = float(np.asarray(meta["dt"]))
    dt = check_dt(dt)
    stages = _stages(graph)
    layers: dict[str, nn.Module] = {}
    i, pooled = 0, 1.0  # pooled: k² of sum pools, read as average pools, still to multiply into the next weights
    while i < len(stages):
        branches = stages[i]
        key = branches[0][-1]
        node = graph.nodes[key]
        nxt_key = stages[i + 1][0][0] if i + 1 < len(stages) and len(stages[i + 1]) == 1 else None
        nxt = graph.nodes[nxt_key] if nxt_key is not None else None
        base = f"layer{len(layers)}"
        if len(branches) > 1 or isinstance(node, (*_SYNAPSES, nir.Delay)):
            _, taps = _taps(graph, branches, dt)
            if isinstance(nxt, _NEURONS):
                layers[base] = _spiking(key, taps, nxt_key, nxt, dt)
                i += 2
            else:
                if len(taps) > 1 or taps[0][0] or not isinstance(taps[0][1], (nir.Linear, nir.Affine)):
                    raise ValueError(f"NIR node {key!r}: a synapse without a following LIF/IF/CubaLIF must be a plain Linear/Affine readout")
                integrator = (nxt_key, nxt) if isinstance(nxt, nir.LI) else None
                layers[base] = _readout(key, taps[0][1], integrator, dt)
                i += 2 if integrator is not None else 1
            with torch.no_grad():
                layers[base].weight.mul_(pooled)
            pooled = 1.0
        elif isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
            if np.any(np.asarray(node.padding) != 0):
                raise ValueError(f"NIR node {key!r}: padded pooling has no spikeforge counterpart")
            layers[base] = Pool("avg", tuple(int(k) for k in node.kernel_size), stride=tuple(int(s) for s in node.stride))
            pooled *= float(np.prod(node.kernel_size)) if isinstance(node, nir.SumPool2d) else 1.0
            i += 1
        elif isinstance(node, nir.Flatten):
            if node.start_dim not in (0, -len(node.input_type["input"])) or node.end_dim != -1:
                raise ValueError(f"NIR node {key!r}: spikeforge flattens all axes of a sample (start_dim 0, end_dim -1)")
            layers[base] = Flatten()
            i += 1
        else:
            raise ValueError(f"NIR node {key!r} ({type(node).__name__}) has no spikeforge counterpart here "
                             f"(expected synapse + LIF/IF/CubaLIF, AvgPool2d, SumPool2d, Flatten, Affine readout)")
    if pooled != 1.0:
        raise ValueError("NIR graph: a SumPool2d must be followed by a synapse (spikeforge pools by averaging)")
    return ImportedNetwork(layers, str(meta.get("spikeforge", {}).get("output_reduction", "mean")))


def import_nir(path: str | os.PathLike, dt: float | None = None) -> ImportedNetwork:
    """Read a NIR file and build the spikeforge model (see `from_nir`)."""
    if not Path(path).exists():
        raise FileNotFoundError(f"NIR file {path} does not exist")
    return from_nir(nir.read(str(path)), dt)
