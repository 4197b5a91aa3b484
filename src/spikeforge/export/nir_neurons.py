"""The mapping between spikeforge's discrete LIF (eqs. (4)–(5), low-activity paper) and NIR's continuous neurons.

With time step dt = 1, NIR's LIF τ·dv/dt = (v_leak − v) + R·I integrated by Euler gives
v[n] = (1 − 1/τ)·v[n−1] + (R/τ)·I[n], so β = 1 − 1/τ and the input gain c = R/τ
(c = 1 for `input_scale="none"`, c = 1 − β for `"one_minus_beta"`). IF is β = 1 with c = R.
CubaLIF adds τ_syn·dI/dt = −I + w_in·S: I[n] = (1 − 1/τ_syn)·I[n−1] + (w_in/τ_syn)·S[n],
spikeforge's synaptic filter I[n] = exp(−1/τ)·I[n−1] + S[n] (neurons.LIF `tau_syn`).
The firing threshold is b·(‖W_i‖² + ε) when the layer normalises it (eq. 5), else b.
NIR 1.0 neurons reset to v_reset; a subtractive reset is recorded in the node metadata
(`metadata["spikeforge"]`), which also carries the exact spikeforge parameters for import.
"""

from __future__ import annotations

import math

import nir
import numpy as np
import torch

from spikeforge.layers.base import SpikingLayer


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def spikeforge_metadata(layer: SpikingLayer) -> dict:
    """The exact spikeforge settings of a spiking layer's neuron, for a lossless import."""
    neuron = layer.neuron
    return {
        "beta": np.float32(float(neuron.beta.detach())), "threshold": _np(neuron.threshold), "nlif": bool(neuron.nlif),
        "normalize_threshold": bool(layer.normalize_threshold), "reset": neuron.cfg.reset, "input_scale": neuron.cfg.input_scale,
        "surrogate": neuron.cfg.surrogate, "scale": float(neuron.cfg.scale), "eps": float(neuron.cfg.eps),
        "tau_syn": float(-1.0 / math.log(neuron.syn_decay)) if neuron.syn_decay is not None else -1.0,
        "learn_beta": isinstance(neuron.beta, torch.nn.Parameter), "learn_threshold": isinstance(neuron.threshold, torch.nn.Parameter),
    }


def neuron_node(layer: SpikingLayer, shape: tuple[int, ...]) -> nir.NIRNode:
    """The NIR neuron (IF, LIF or CubaLIF) of a spiking layer whose output per sample has `shape` (C, *spatial)."""
    neuron = layer.neuron
    beta = float(neuron.beta.detach())
    c = (1.0 - beta) if neuron.cfg.input_scale == "one_minus_beta" else 1.0
    w = layer.weight.detach().flatten(1)
    b = neuron.threshold.detach()
    threshold = b * ((w * w).sum(1) + neuron.cfg.eps) if layer.normalize_threshold else b  # eq. (5)
    per_neuron = lambda v: np.broadcast_to(np.asarray(v, dtype=np.float32).reshape((-1,) + (1,) * (len(shape) - 1)), shape).copy()  # noqa: E731
    v_th, zeros = per_neuron(_np(threshold)), np.zeros(shape, dtype=np.float32)
    meta = {"spikeforge": spikeforge_metadata(layer)}
    if neuron.syn_decay is not None:
        tau_syn = 1.0 / (1.0 - neuron.syn_decay)
        tau_mem = 1.0 / (1.0 - beta) if beta < 1.0 else math.inf
        return nir.CubaLIF(tau_syn=per_neuron(tau_syn), tau_mem=per_neuron(tau_mem), r=per_neuron(c * tau_mem if beta < 1 else c),
                           v_leak=zeros, v_threshold=v_th, v_reset=zeros, w_in=per_neuron(tau_syn), metadata=meta)
    if beta >= 1.0:
        return nir.IF(r=per_neuron(c), v_threshold=v_th, v_reset=zeros, metadata=meta)
    tau = 1.0 / (1.0 - beta)
    return nir.LIF(tau=per_neuron(tau), r=per_neuron(c * tau), v_leak=zeros, v_threshold=v_th, v_reset=zeros, metadata=meta)


def _uniform(name: str, node: str, values: np.ndarray) -> float:
    flat = np.asarray(values, dtype=np.float64).ravel()
    if not np.allclose(flat, flat[0], rtol=1e-6, atol=0):
        raise ValueError(f"NIR node {node!r}: {name} differs between neurons; spikeforge has one value per layer")
    return float(flat[0])


def lif_kwargs(node: nir.NIRNode, name: str, channels: int) -> tuple[dict, float, np.ndarray, bool]:
    """(LIF keyword arguments, β, threshold b [C], normalize_threshold) for a NIR neuron node."""
    meta = node.metadata.get("spikeforge") if isinstance(node.metadata, dict) else None
    if meta is not None:  # written by spikeforge: exact
        kwargs = {k: meta[k] for k in ("reset", "input_scale", "surrogate", "scale", "nlif", "learn_beta", "learn_threshold")}
        kwargs["reset"], kwargs["input_scale"], kwargs["surrogate"] = str(kwargs["reset"]), str(kwargs["input_scale"]), str(kwargs["surrogate"])
        kwargs["nlif"], kwargs["learn_beta"], kwargs["learn_threshold"] = bool(kwargs["nlif"]), bool(kwargs["learn_beta"]), bool(kwargs["learn_threshold"])
        if float(meta["tau_syn"]) > 0:
            kwargs["tau_syn"] = float(meta["tau_syn"])
        return kwargs, float(meta["beta"]), np.asarray(meta["threshold"], dtype=np.float32), bool(meta["normalize_threshold"])
    v_reset = getattr(node, "v_reset", None)
    if v_reset is not None and np.any(np.asarray(v_reset) != 0):
        raise ValueError(f"NIR node {name!r}: v_reset must be 0 (spikeforge resets to zero or subtracts the threshold)")
    if np.any(np.asarray(getattr(node, "v_leak", 0.0)) != 0):
        raise ValueError(f"NIR node {name!r}: v_leak must be 0 (spikeforge's LIF leaks towards 0)")
    threshold = np.asarray(node.v_threshold, dtype=np.float32).reshape(channels, -1)[:, 0].copy()
    kwargs: dict = {"reset": "zero"}
    if isinstance(node, nir.IF):
        gain = _uniform("r", name, node.r)
        if not math.isclose(gain, 1.0, rel_tol=1e-6):
            raise ValueError(f"NIR node {name!r}: IF with r = {gain:g}; spikeforge's NLIF needs r = 1 (fold r into the weights)")
        return {**kwargs, "nlif": True}, 1.0, threshold, False
    tau = _uniform("tau_mem" if isinstance(node, nir.CubaLIF) else "tau", name, node.tau_mem if isinstance(node, nir.CubaLIF) else node.tau)
    beta = 1.0 - 1.0 / tau
    gain = _uniform("r", name, node.r) / tau
    if math.isclose(gain, 1.0, rel_tol=1e-6):
        kwargs["input_scale"] = "none"
    elif math.isclose(gain, 1.0 - beta, rel_tol=1e-6):
        kwargs["input_scale"] = "one_minus_beta"
    else:
        raise ValueError(f"NIR node {name!r}: input gain r/τ = {gain:g} is neither 1 nor 1 − β = {1 - beta:g}; fold it into the weights")
    if isinstance(node, nir.CubaLIF):
        tau_syn = _uniform("tau_syn", name, node.tau_syn)
        if not math.isclose(_uniform("w_in", name, node.w_in), tau_syn, rel_tol=1e-6):
            raise ValueError(f"NIR node {name!r}: CubaLIF needs w_in = tau_syn (unit synaptic gain) for spikeforge's filter")
        kwargs["tau_syn"] = -1.0 / math.log(1.0 - 1.0 / tau_syn)
    return kwargs, beta, threshold, False
