"""Export a feed-forward spikeforge model to a NIR graph, and build a spikeforge model from one.

Supported chain elements: `SpikingLinear` (→ Linear/Affine + LIF/IF/CubaLIF), `SpikingConv` with
1 or 2 spatial axes and no kernel over time (→ Conv1d/Conv2d + neuron), `Pool("avg")` in 2-D
(→ AvgPool2d), `Flatten`, `Readout` (→ Affine, + LI when it integrates). The model must be an
`nn.Sequential` of these (or hold one as `.layers`). What NIR 1.0 cannot express raises a
ValueError naming the layer and the reason.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import nir
import numpy as np
import torch
from torch import nn

from spikeforge.export.nir_neurons import lif_kwargs, neuron_node
from spikeforge.layers import Flatten, Pool, Readout, SpikingConv, SpikingLinear
from spikeforge.layers.base import SpikingLayer


class ImportedNetwork(nn.Sequential):
    """A spikeforge model rebuilt from a NIR graph: a chain of layers with the graph's output reduction."""

    def __init__(self, layers: dict[str, nn.Module], output_reduction: str = "mean") -> None:
        super().__init__(OrderedDict(layers))
        self.output_reduction = output_reduction


def _chain(model: nn.Module) -> list[tuple[str, nn.Module]]:
    seq = model if isinstance(model, nn.Sequential) else getattr(model, "layers", None)
    if not isinstance(seq, nn.Sequential):
        raise ValueError(f"NIR export needs a feed-forward chain: an nn.Sequential, or a model with an nn.Sequential `.layers`; got {type(model).__name__}")
    return list(seq.named_children())


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32).copy()


def _shapes(chain: list[tuple[str, nn.Module]], input_shape: tuple[int, ...]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Per-sample input and output shape of every chain element, from one forward pass on zeros [2, 1, *input_shape]."""
    shapes, x = [], torch.zeros(2, 1, *input_shape)
    with torch.no_grad():
        for _, module in chain:
            y = module(x)
            shapes.append((tuple(x.shape[2:]), tuple(y.shape[2:])))
            x = y
    return shapes


def _unsupported(name: str, module: nn.Module) -> str | None:
    """Why NIR 1.0 cannot express `module`, or None."""
    if isinstance(module, SpikingLayer):
        if module.lateral:
            return "its lateral reset W·Wᵀ·S[n−1] couples the neurons' resets, and NIR has no reset connections"
        if module.recurrent is not None:
            return "its recurrent pool feedback V·S[n−1] inside the neuron has no NIR primitive"
        if isinstance(module, SpikingConv) and (module.time_kernel > 1 or module.spatial_dims == 3):
            return "NIR 1.0 has no convolution over time (synaptic delays)" if module.time_kernel > 1 else "NIR 1.0 has no Conv3d"
        if not isinstance(module, (SpikingLinear, SpikingConv)):
            return f"{type(module).__name__} is not a dense or convolutional LIF layer"
        return None
    if isinstance(module, Pool) and (module.kind != "avg" or module.spatial_dims != 2):
        return f"NIR 1.0 has only 2-D average and sum pooling, not {module.kind} pooling over {module.spatial_dims} axes"
    if isinstance(module, Readout) and module.integrate == 1.0:
        return "a readout integrator without leak (β_out = 1) has no finite NIR time constant"
    if isinstance(module, (Pool, Readout, Flatten)):
        return None
    if "relpsp" in type(module).__name__.lower():
        return "ReL-PSP neurons (one spike, a linearly rising post-synaptic potential) have no NIR primitive"
    return f"{type(module).__name__} has no NIR counterpart in spikeforge's exporter"


def _synapse(layer: SpikingLayer, in_shape: tuple[int, ...]) -> nir.NIRNode:
    bias = _np(layer.bias) if layer.bias is not None else None
    if isinstance(layer, SpikingLinear):
        return nir.Affine(_np(layer.weight), bias) if bias is not None else nir.Linear(_np(layer.weight))
    weight = _np(layer.weight.squeeze(2))  # no kernel over time: [C_out, C_in, *kernel]
    bias = bias if bias is not None else np.zeros(weight.shape[0], dtype=np.float32)
    if layer.spatial_dims == 1:
        return nir.Conv1d(in_shape[1], weight, layer.stride[0], layer.padding[0], layer.dilation[0], 1, bias)
    return nir.Conv2d(tuple(in_shape[1:]), weight, layer.stride, layer.padding, layer.dilation, 1, bias)


def to_nir(model: nn.Module, input_shape: tuple[int, ...]) -> nir.NIRGraph:
    """The NIR graph of a feed-forward model whose per-sample, per-step input has `input_shape`."""
    chain = _chain(model)
    for name, module in chain:
        reason = _unsupported(name, module)
        if reason is not None:
            raise ValueError(f"layer {name!r} ({type(module).__name__}) cannot be exported to NIR: {reason}")
    shapes = _shapes(chain, tuple(input_shape))
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input({"input": np.array(input_shape)})}
    edges, last = [], "input"

    def add(key: str, node: nir.NIRNode) -> None:
        nonlocal last
        nodes[key] = node
        edges.append((last, key))
        last = key

    for (name, module), (in_shape, out_shape) in zip(chain, shapes):
        if isinstance(module, SpikingLayer):
            add(f"{name}.synapse", _synapse(module, in_shape))
            add(f"{name}.neuron", neuron_node(module, out_shape))
        elif isinstance(module, Readout):
            w = module.weight.detach()
            scale = ((w * w).sum(1) + module.eps) if module.normalized else torch.ones(w.shape[0])
            meta = {"spikeforge": {"normalized": bool(module.normalized), "eps": float(module.eps), "weight": _np(w)}}
            add(name, nir.Affine(_np(w / scale[:, None]), _np(module.bias), metadata=meta))
            if module.integrate is not None:
                tau = np.full(out_shape, 1.0 / (1.0 - module.integrate), dtype=np.float32)
                add(f"{name}.integrator", nir.LI(tau, tau.copy(), np.zeros(out_shape, dtype=np.float32), metadata={"spikeforge": {"integrate": float(module.integrate)}}))
        elif isinstance(module, Pool):
            k = np.array(module.kernel_size if isinstance(module.kernel_size, (tuple, list)) else (module.kernel_size,) * 2)
            s = np.array(module.stride if isinstance(module.stride, (tuple, list)) else (module.stride,) * 2)
            add(name, nir.AvgPool2d(k, s, np.zeros(2, dtype=int)))
        else:
            add(name, nir.Flatten({"input": np.array(in_shape)}, start_dim=0, end_dim=-1))
    nodes["output"] = nir.Output({"output": np.array(shapes[-1][1])})
    edges.append((last, "output"))
    meta = {"spikeforge": {"output_reduction": getattr(model, "output_reduction", "mean"), "input_shape": np.array(input_shape)}}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def _order(graph: nir.NIRGraph) -> list[str]:
    """Node names from input to output; a graph that branches or loops is refused."""
    following: dict[str, str] = {}
    for src, dst in graph.edges:
        if src in following:
            raise ValueError(f"NIR graph branches at node {src!r}; spikeforge imports feed-forward chains only")
        following[src] = dst
    start = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(start) != 1:
        raise ValueError(f"NIR graph needs exactly one Input node, found {len(start)}")
    order, node = [], start[0]
    while node in following:
        node = following[node]
        if node in order:
            raise ValueError(f"NIR graph has a cycle through {node!r}; spikeforge imports feed-forward chains only")
        order.append(node)
    return [k for k in order if not isinstance(graph.nodes[k], nir.Output)]


_NEURONS = (nir.LIF, nir.IF, nir.CubaLIF)


def _spiking_layer(name: str, synapse: nir.NIRNode, neuron_name: str, neuron: nir.NIRNode) -> SpikingLayer:
    weight = np.asarray(synapse.weight, dtype=np.float32)
    kwargs, beta, threshold, normalize = lif_kwargs(neuron, neuron_name, weight.shape[0])
    bias = getattr(synapse, "bias", None)
    has_bias = bias is not None and np.any(np.asarray(bias) != 0)
    if isinstance(synapse, (nir.Linear, nir.Affine)):
        layer = SpikingLinear(weight.shape[1], weight.shape[0], normalize_threshold=normalize, bias=has_bias, **kwargs)
        layer.weight.data.copy_(torch.from_numpy(weight))
    else:
        dims = 1 if isinstance(synapse, nir.Conv1d) else 2
        if synapse.groups != 1 or isinstance(synapse.padding, str) and synapse.padding != "valid":
            raise ValueError(f"NIR node {name!r}: spikeforge needs groups = 1 and integer padding")
        ints = lambda v: tuple(int(a) for a in np.broadcast_to(np.asarray(v), (dims,)))  # noqa: E731
        padding = (0,) * dims if isinstance(synapse.padding, str) else ints(synapse.padding)
        layer = SpikingConv(weight.shape[1], weight.shape[0], weight.shape[2:], spatial_dims=dims, stride=ints(synapse.stride), padding=padding,
                            dilation=ints(synapse.dilation), normalize_threshold=normalize, bias=has_bias, **kwargs)
        layer.weight.data.copy_(torch.from_numpy(weight).unsqueeze(2))
    if has_bias:
        layer.bias.data.copy_(torch.from_numpy(np.asarray(bias, dtype=np.float32)))
    layer.neuron.beta.data.fill_(beta)
    layer.neuron.threshold.data.copy_(torch.from_numpy(threshold))
    return layer


def _readout(name: str, node: nir.NIRNode, integrator: nir.NIRNode | None) -> Readout:
    meta = node.metadata.get("spikeforge", {}) if isinstance(node.metadata, dict) else {}
    weight = np.asarray(meta.get("weight", node.weight), dtype=np.float32)
    integrate = None
    if integrator is not None:
        integrate = float(integrator.metadata["spikeforge"]["integrate"]) if "spikeforge" in integrator.metadata else 1.0 - 1.0 / float(np.ravel(integrator.tau)[0])
    out = Readout(weight.shape[1], weight.shape[0], normalized=bool(meta.get("normalized", False)), integrate=integrate, eps=float(meta.get("eps", 1e-8)))
    out.weight.data.copy_(torch.from_numpy(weight))
    bias = getattr(node, "bias", None)
    out.bias.data.copy_(torch.from_numpy(np.asarray(bias, dtype=np.float32)) if bias is not None else torch.zeros(weight.shape[0]))
    return out


def from_nir(graph: nir.NIRGraph) -> ImportedNetwork:
    """Build a spikeforge model from a NIR chain: synapse + neuron pairs, pooling, flatten, a final readout."""
    order = _order(graph)
    layers: dict[str, nn.Module] = {}
    i = 0
    while i < len(order):
        key, node = order[i], graph.nodes[order[i]]
        nxt = graph.nodes[order[i + 1]] if i + 1 < len(order) else None
        base = key.split(".")[0].replace("/", "_") or f"layer{i}"
        if isinstance(node, (nir.Linear, nir.Affine, nir.Conv1d, nir.Conv2d)) and isinstance(nxt, _NEURONS):
            layers[base] = _spiking_layer(key, node, order[i + 1], nxt)
            i += 2
        elif isinstance(node, (nir.Linear, nir.Affine)):
            integrator = nxt if isinstance(nxt, nir.LI) else None
            layers[base] = _readout(key, node, integrator)
            i += 2 if integrator is not None else 1
        elif isinstance(node, nir.AvgPool2d):
            if np.any(np.asarray(node.padding) != 0):
                raise ValueError(f"NIR node {key!r}: padded pooling has no spikeforge counterpart")
            layers[base] = Pool("avg", tuple(int(k) for k in node.kernel_size), stride=tuple(int(s) for s in node.stride))
            i += 1
        elif isinstance(node, nir.Flatten):
            layers[base] = Flatten()
            i += 1
        else:
            raise ValueError(f"NIR node {key!r} ({type(node).__name__}) has no spikeforge counterpart here (expected synapse + LIF/IF/CubaLIF, AvgPool2d, Flatten, Affine readout)")
    meta = graph.metadata.get("spikeforge", {}) if isinstance(graph.metadata, dict) else {}
    return ImportedNetwork(layers, str(meta.get("output_reduction", "mean")))


def export_nir(model: nn.Module, input_shape: tuple[int, ...], path: str | os.PathLike) -> Path:
    """Write the model's NIR graph to `path` (HDF5, readable by `nir.read`)."""
    nir.write(str(path), to_nir(model, input_shape))
    return Path(path)


def import_nir(path: str | os.PathLike) -> ImportedNetwork:
    """Read a NIR file and build the spikeforge model."""
    if not Path(path).exists():
        raise FileNotFoundError(f"NIR file {path} does not exist")
    return from_nir(nir.read(str(path)))
