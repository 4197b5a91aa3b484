"""Run a NIR graph step by step by NIR's documented equations (Euler, step dt): the judge of what an exported file means.

Written from NIR's node definitions alone (see `nir_neurons` for the discrete equations), with
no spikeforge layer in the loop, so that comparing its output with the model that was exported
tests the file, not the exporter against itself. Every edge carries the current step's value
(a Delay node shifts by whole steps); a node sums its inputs. A cycle must pass through a Delay
of at least one step (its output is known before its input: the SRM's refractory feedback), or
be a recurrent connection, neuron → synapse → the same neuron, whose neuron → synapse edge
carries the previous step's output (zero at the start), as nirtorch and snn-mlir read it.
"""

from __future__ import annotations

import nir
import numpy as np
import torch
import torch.nn.functional as F

from spikeforge.export.nir_neurons import check_dt


def _steps(node: nir.Delay, dt: float) -> torch.Tensor:
    return torch.as_tensor(np.rint(np.asarray(node.delay, dtype=np.float64) / dt).astype(np.int64))


_NEURONS = (nir.LIF, nir.IF, nir.CubaLIF, nir.LI, nir.CubaLI)
_SYNAPSES = (nir.Linear, nir.Affine, nir.Conv1d, nir.Conv2d)


def _recurrent(graph: nir.NIRGraph) -> set[tuple[str, str]]:
    """The neuron → synapse edges of two-node cycles neuron ⇄ synapse (recurrent connections)."""
    edges = set(graph.edges)
    return {(s, d) for s, d in edges if (d, s) in edges and isinstance(graph.nodes[s], _NEURONS) and isinstance(graph.nodes[d], _SYNAPSES)}


def _order(graph: nir.NIRGraph, dt: float, recurrent: set[tuple[str, str]]) -> list[str]:
    """Nodes in an order where each comes after its inputs (Kahn); a Delay of ≥ 1 step and a recurrent edge need none of this step's."""
    waits = {k: set() if isinstance(n, nir.Delay) and int(_steps(n, dt).min()) >= 1 else
             {s for s, d in graph.edges if d == k and (s, d) not in recurrent} for k, n in graph.nodes.items()}
    order, done = [], set()
    while len(order) < len(graph.nodes):
        ready = [k for k in graph.nodes if k not in done and waits[k] <= done]
        if not ready:
            raise ValueError("the NIR graph has a cycle without a Delay of at least one step (or a neuron ⇄ synapse recurrence); "
                             "it has no step-by-step meaning")
        order += ready
        done.update(ready)
    return order


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float32))


def _stateless(node: nir.NIRNode, x: torch.Tensor) -> torch.Tensor:
    """The per-step map of a node without state; x is `[B, *shape]`."""
    if isinstance(node, nir.Linear):
        return x @ _t(node.weight).t()
    if isinstance(node, nir.Affine):
        return x @ _t(node.weight).t() + _t(node.bias)
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        conv = F.conv1d if isinstance(node, nir.Conv1d) else F.conv2d
        padding = node.padding if isinstance(node.padding, str) else tuple(np.atleast_1d(node.padding).astype(int).tolist())
        ints = lambda v: tuple(np.atleast_1d(v).astype(int).tolist())  # noqa: E731
        return conv(x, _t(node.weight), _t(node.bias), ints(node.stride), padding, ints(node.dilation), int(node.groups))
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        k = tuple(int(v) for v in np.atleast_1d(node.kernel_size))
        y = F.avg_pool2d(x, k, tuple(int(v) for v in np.atleast_1d(node.stride)), tuple(int(v) for v in np.atleast_1d(node.padding)))
        return y * float(np.prod(k)) if isinstance(node, nir.SumPool2d) else y
    if isinstance(node, nir.Scale):
        return x * _t(node.scale)
    if isinstance(node, nir.Threshold):
        return (x > _t(node.threshold)).float()
    if isinstance(node, nir.Flatten):
        rank = len(node.input_type["input"])
        start, end = node.start_dim % rank + 1, node.end_dim % rank + 1
        return x.flatten(start, end)
    raise ValueError(f"the reference simulator does not run NIR {type(node).__name__} nodes")


def _neuron_step(node: nir.NIRNode, x: torch.Tensor, state: dict, dt: float) -> torch.Tensor:
    """One Euler step of LIF / IF / CubaLIF / LI / CubaLI; returns spikes (or the potential for LI, CubaLI)."""
    v = state.get("v", torch.zeros_like(x))
    if isinstance(node, (nir.CubaLIF, nir.CubaLI)):
        i = state.get("i", torch.zeros_like(x))
        i = i + dt / _t(node.tau_syn) * (-i + _t(node.w_in) * x)
        state["i"], x = i, i
        tau = _t(node.tau_mem)
    else:
        tau = _t(node.tau) if hasattr(node, "tau") else None
    if tau is None:  # IF: dv/dt = r·I
        v = v + dt * _t(node.r) * x
    else:  # τ·dv/dt = (v_leak − v) + r·I
        v = v + dt / tau * (_t(node.v_leak) - v + _t(node.r) * x)
    if isinstance(node, (nir.LI, nir.CubaLI)):
        state["v"] = v
        return v
    z = (v > _t(node.v_threshold)).float()
    state["v"] = torch.where(z.bool(), _t(node.v_reset).expand_as(v), v)
    return z


def _delayed(state: dict, node: nir.Delay, n: int, dt: float, current, batch: int) -> torch.Tensor:
    """x[n − d] per element (0 before the start); `current()` gives x[n], read only when some d = 0."""
    steps, seen = _steps(node, dt), state.setdefault("seen", [])
    if int(steps.min()) == 0:
        seen.append(current())
    if not seen:
        return torch.zeros(batch, *steps.shape)
    past = torch.stack(seen)  # [steps seen, B, ...]
    idx = (n - steps).expand_as(past[0])
    valid = (idx >= 0) & (idx < past.shape[0])
    return torch.where(valid, past.gather(0, idx.clamp(0, past.shape[0] - 1).unsqueeze(0)).squeeze(0), torch.zeros_like(past[0]))


def simulate(graph: nir.NIRGraph, x: torch.Tensor, dt: float | None = None, record: bool = False):
    """Output `[T, B, *out]` of `graph` for input `x` `[T, B, *in]` (batch-first per step); with `record`, also {node: `[T, B, ...]`}."""
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    if dt is None:
        if "dt" not in meta:
            raise ValueError("the NIR graph does not state its time step (no metadata['dt']); pass dt in seconds")
        dt = float(np.asarray(meta["dt"]))
    dt = check_dt(dt)
    recurrent = _recurrent(graph)
    order = _order(graph, dt, recurrent)
    pred = {k: [s for s, d in graph.edges if d == k] for k in graph.nodes}
    states: dict[str, dict] = {k: {} for k in graph.nodes}
    history: dict[str, list[torch.Tensor]] = {k: [] for k in graph.nodes}
    x = x.float()
    values = {s: torch.zeros(x.shape[1], *np.asarray(graph.nodes[s].input_type["input"], dtype=int)) for s, _ in recurrent}
    for n in range(x.shape[0]):
        values = {s: values[s] for s, _ in recurrent}  # the recurrent edges' previous step
        for key in order:
            node = graph.nodes[key]
            if isinstance(node, nir.Delay):
                values[key] = _delayed(states[key], node, n, dt, lambda: sum(values[p] for p in pred[key]), x.shape[1])
                if record:
                    history[key].append(values[key])
                continue
            inp = x[n] if isinstance(node, nir.Input) else sum(values[p] for p in pred[key])
            if isinstance(node, (nir.Input, nir.Output)):
                out = inp
            elif isinstance(node, _NEURONS):
                out = _neuron_step(node, inp, states[key], dt)
            else:
                out = _stateless(node, inp)
            values[key] = out
            if record:
                history[key].append(out)
        for key in order:  # inputs of the delays that did not wait for them
            if isinstance(graph.nodes[key], nir.Delay) and len(states[key]["seen"]) == n:
                states[key]["seen"].append(sum(values[p] for p in pred[key]))
        outputs = [k for k in order if isinstance(graph.nodes[k], nir.Output)]
        history.setdefault("__output__", []).append(values[outputs[0]])
    result = torch.stack(history.pop("__output__"))
    return (result, {k: torch.stack(v) for k, v in history.items() if v}) if record else result
