"""NIR's neurons in discrete time: the mapping between spikeforge's neurons and NIR's LIF, IF, CubaLIF and LI.

NIR's equations integrated by Euler with step dt (the graph's `metadata["dt"]`):

    LIF      v[n] = (1 − dt/τ)·v[n−1] + (dt·r/τ)·I[n]          spike v > v_threshold, then v = v_reset
    IF       v[n] = v[n−1] + dt·r·I[n]
    CubaLIF  i[n] = (1 − dt/τ_syn)·i[n−1] + (dt·w_in/τ_syn)·I[n],  v as LIF with input i
    LI       v[n] = (1 − dt/τ)·v[n−1] + (dt·r/τ)·I[n]           no spikes

so β = 1 − dt/τ and the input gain is dt·r/τ. spikeforge's LIF (eqs. (4)–(5), low-activity
paper) with reset to zero is this with v_reset = 0; its per-channel threshold b·(‖W_i‖² + ε)
and input gain c are folded into the incoming weights (exact: the neuron is linear below the
threshold and the reset is to 0), so every exported neuron has v_threshold = 1. Two forms of
the gain are written, both exact by NIR's equations: `resistance="tau/dt"` (r = τ/dt, unit gain;
what snn-mlir and snnTorch read) and `resistance="1"` (r = 1, gain dt/τ in the weights;
Norse 1.1 ignores r of LIF nodes). IF is always r = 1/dt (unit gain dt·r; Norse's IF adds its
input unscaled, snn-mlir's reads r as a bare gain and so accepts it at dt = 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import nir
import numpy as np

RESISTANCES = ("tau/dt", "1")


@dataclass(frozen=True)
class Neuron:
    """A reset-to-zero neuron in discrete time: v[n] = β·v[n−1] + I_syn[n], spike v > 1 (gain and threshold already in the weights).

    `syn_decay` α adds the synaptic filter I_syn[n] = α·I_syn[n−1] + I[n] (current-based);
    `spiking=False` is the leaky integrator of a readout.
    """

    beta: float
    syn_decay: float | None = None
    spiking: bool = True


def _full(value: float, shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, value, dtype=np.float32)


def check_dt(dt: float) -> float:
    """`dt` if it is a positive finite time step (seconds), else a one-line ValueError."""
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt (the time step of the NIR graph, in seconds) must be a positive number, got {dt!r}")
    return float(dt)


def neuron_node(neuron: Neuron, shape: tuple[int, ...], dt: float, resistance: str) -> tuple[nir.NIRNode, float]:
    """(NIR node, extra factor for the incoming weights) of `neuron` with per-sample `shape`."""
    if resistance not in RESISTANCES:
        raise ValueError(f"resistance must be one of {RESISTANCES}, got {resistance!r}")
    zeros, ones = _full(0.0, shape), _full(1.0, shape)
    if neuron.syn_decay is not None:
        if neuron.beta >= 1.0:
            raise ValueError("a current-based neuron without leak (β = 1) has no finite NIR time constant τ_mem")
        tau_syn, tau_mem = dt / (1.0 - neuron.syn_decay), dt / (1.0 - neuron.beta)
        node = nir.CubaLIF(tau_syn=_full(tau_syn, shape), tau_mem=_full(tau_mem, shape), r=_full(tau_mem / dt, shape),
                           v_leak=zeros, v_threshold=ones, v_reset=zeros.copy(), w_in=_full(tau_syn / dt, shape))
        return node, 1.0  # Norse and snnTorch both honour r and w_in of CubaLIF
    if neuron.beta >= 1.0:
        if not neuron.spiking:
            raise ValueError("a readout integrator without leak (β_out = 1) has no finite NIR time constant")
        return nir.IF(r=_full(1.0 / dt, shape), v_threshold=ones, v_reset=zeros), 1.0  # unit gain dt·r in both forms
    tau = dt / (1.0 - neuron.beta)
    r = tau / dt if resistance == "tau/dt" else 1.0
    if not neuron.spiking:
        return nir.LI(tau=_full(tau, shape), r=_full(r, shape), v_leak=zeros), tau / (dt * r)
    return nir.LIF(tau=_full(tau, shape), r=_full(r, shape), v_leak=zeros, v_threshold=ones, v_reset=zeros.copy()), tau / (dt * r)


def _uniform(name: str, node: str, values) -> float:
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size == 0 or not np.allclose(flat, flat[0], rtol=1e-6, atol=0):
        raise ValueError(f"NIR node {node!r}: {name} differs between neurons; spikeforge has one value per layer")
    return float(flat[0])


def _decay(tau_name: str, node: str, tau, dt: float) -> float:
    """β = 1 − dt/τ, refused unless τ ≥ dt (β ∈ [0, 1])."""
    tau = _uniform(tau_name, node, tau)
    if not math.isfinite(tau) or tau < dt * (1 - 1e-6):
        raise ValueError(f"NIR node {node!r}: {tau_name} = {tau:g} s is below one time step dt = {dt:g} s "
                         f"(β = 1 − dt/τ = {1 - dt / tau if tau else -math.inf:g} is outside [0, 1]); pass the dt the file was written for")
    return max(0.0, 1.0 - dt / tau)


def _zero(name: str, node: str, values) -> None:
    if values is not None and np.any(np.asarray(values) != 0):
        raise ValueError(f"NIR node {node!r}: {name} must be 0 (spikeforge's neurons leak to and reset to 0)")


def read_neuron(node: nir.NIRNode, name: str, dt: float) -> tuple[Neuron, np.ndarray, np.ndarray]:
    """(Neuron, input gain per neuron, threshold per neuron) of a NIR LIF / IF / CubaLIF / LI node at step `dt`."""
    _zero("v_leak", name, getattr(node, "v_leak", None))
    _zero("v_reset", name, getattr(node, "v_reset", None))
    threshold = np.asarray(getattr(node, "v_threshold", np.ones_like(np.asarray(node.r))), dtype=np.float64)
    if np.any(threshold <= 0):
        raise ValueError(f"NIR node {name!r}: v_threshold must be > 0")
    r = np.asarray(node.r, dtype=np.float64)
    if isinstance(node, nir.IF):
        return Neuron(1.0), dt * r, threshold
    if isinstance(node, nir.CubaLIF):
        alpha, beta = _decay("tau_syn", name, node.tau_syn, dt), _decay("tau_mem", name, node.tau_mem, dt)
        gain = (dt * np.asarray(node.w_in, dtype=np.float64) / np.asarray(node.tau_syn)) * (dt * r / np.asarray(node.tau_mem))
        return Neuron(beta, syn_decay=alpha), gain, threshold
    beta = _decay("tau", name, node.tau, dt)
    return Neuron(beta, spiking=isinstance(node, nir.LIF)), dt * r / np.asarray(node.tau, dtype=np.float64), threshold
