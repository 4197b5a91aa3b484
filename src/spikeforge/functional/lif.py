"""LIF / NLIF dynamics over a whole sequence: a step-by-step reference and a fused scan.

The model (eqs. (4)–(6), low-activity paper; eqs. (5.1)–(5.5), s2net report):

    U[n] = β·(U[n−1] − R[n−1]) + c·(I[n] + V·S[n−1])      c = 1, or (1 − β) (report eq. 5.1)
    S[n] = Θ(U[n] / q − b)                                  q = ‖W_i‖² + ε (eq. 5), or 1
    R[n] = b·‖W_i‖²·S[n]   (subtract)   | G·S[n] (lateral, G = W·Wᵀ, report eq. 5.3)
         | U[n]·S[n]       (zero: hard reset to 0) | 0 (none)

V is an optional recurrent matrix between channels at the same position (recurrent pool,
report §5.4). NLIF (eq. 6) is β = 1 with c = 1. Tensors are `[T, B, C, *spatial]`; b and
‖W_i‖² are per channel `[C]`, G and V are `[C, C]` and mix channels at every position.
The initial state (U[−1], S[−1]) is a constant (zero unless given), so that a long
sequence can be streamed in chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spikeforge.functional import lif_cpu
from spikeforge.functional.surrogate import check_surrogate, spike_fn, surrogate_grad

RESETS = ("subtract", "zero", "none")
IMPLS = ("fused", "fused_torch", "reference")
INPUT_SCALES = ("none", "one_minus_beta")


@dataclass(frozen=True)
class LIFConfig:
    """The discrete choices of the LIF scan (what is not a tensor)."""

    reset: str = "subtract"
    input_scale: str = "none"
    surrogate: str = "sigmoid"
    scale: float = 10.0
    eps: float = 1e-8
    compiled: bool = True  # use the compiled CPU kernels where they apply (`functional.lif_cpu`)

    def __post_init__(self) -> None:
        if self.reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, got {self.reset!r}")
        if self.input_scale not in INPUT_SCALES:
            raise ValueError(f"input_scale must be one of {INPUT_SCALES}, got {self.input_scale!r}")
        check_surrogate(self.surrogate, self.scale)


def mix_channels(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(M·x) over the channel axis 1 of x `[B, C, *spatial]`, at every position."""
    if x.dim() == 2:
        return x @ matrix.t()
    return (matrix @ x.flatten(2)).view_as(x)


def _mix_seq(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`mix_channels` over a whole sequence `[T, B, C, *spatial]`."""
    return mix_channels(matrix, x.flatten(0, 1)).view_as(x)


def _channel_view(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-channel `[C]` tensor to broadcast against `[..., C, *spatial]` (C at -x.dim()+2)."""
    return p.reshape(p.shape + (1,) * (x.dim() - 3))


def _reset_vector(u, s, b, norm, gram, reset):
    """R[n] from U[n] and S[n] (eq. (4), low-activity paper; eq. (5.3), report)."""
    if reset == "subtract":
        if gram is not None:
            return mix_channels(gram, s)
        return s * b if norm is None else s * (b * norm)
    if reset == "zero":
        return u * s
    return torch.zeros_like(u)


def _initial_state(current: torch.Tensor, initial):
    if initial is None:
        zeros = current.new_zeros(current.shape[1:])
        return zeros, zeros
    u0, s0 = initial
    if u0.shape != current.shape[1:] or s0.shape != current.shape[1:]:
        raise ValueError(
            f"initial state must be (membrane, spikes) of shape {tuple(current.shape[1:])} "
            f"(one step of the input), got {tuple(u0.shape)} and {tuple(s0.shape)}"
        )
    return u0.detach(), s0.detach()


def lif_reference(current, beta, threshold, norm=None, gram=None, recurrent=None, cfg=LIFConfig(), initial=None):
    """The specification: a plain autograd loop over the steps. Returns (spikes, membrane)."""
    b = _channel_view(threshold, current)
    nrm = None if norm is None else _channel_view(norm, current)
    q = None if norm is None else nrm + cfg.eps
    c = (1 - beta) if cfg.input_scale == "one_minus_beta" else 1.0
    u_prev, s_prev = _initial_state(current, initial)
    r_prev = _reset_vector(u_prev, s_prev, b, nrm, gram, cfg.reset)
    spikes, membrane = [], []
    for n in range(current.shape[0]):
        drive = current[n] if recurrent is None else current[n] + mix_channels(recurrent, s_prev)
        u = beta * (u_prev - r_prev) + c * drive  # eq. (4) / report eq. (5.1)
        x = (u if q is None else u / q) - b  # eq. (5)
        s = spike_fn(x, cfg.surrogate, cfg.scale)
        r_prev = _reset_vector(u, s, b, nrm, gram, cfg.reset)
        u_prev, s_prev = u, s
        spikes.append(s)
        membrane.append(u)
    return torch.stack(spikes), torch.stack(membrane)


def _shift(x: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """[first, x[0], …, x[T−2]]: the sequence delayed by one step."""
    return torch.cat([first.unsqueeze(0), x[:-1]])


def _sum_to_channel(x: torch.Tensor) -> torch.Tensor:
    """Sum `[T, B, C, *spatial]` over everything but the channel axis → `[C]`."""
    return x.transpose(0, 2).reshape(x.shape[2], -1).sum(1)


def _outer_to_channel(a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Σ over time, batch and positions of a_i·s_j → `[C, C]`."""
    a2 = a.transpose(0, 2).reshape(a.shape[2], -1)
    s2 = s.transpose(0, 2).reshape(s.shape[2], -1)
    return a2 @ s2.t()


def _kernel_backend(current: torch.Tensor, gram, recurrent) -> str | None:
    """"numba" (CPU) or "triton" (CUDA) kernels for float scans where every neuron resets only itself, else None."""
    if gram is not None or recurrent is not None or current.shape[0] == 0 or current.dtype not in (torch.float32, torch.float64):
        return None
    if current.device.type == "cuda":
        from spikeforge.functional import lif_triton  # imports triton: only once a CUDA scan runs

        return "triton" if lif_triton.available else None
    return "numba" if lif_cpu.available and current.device.type == "cpu" else None


def _flat(x: torch.Tensor, steps: int | None = None):
    """A contiguous numpy view `[T, N]` (or `[N]`) of a CPU tensor."""
    x = x.detach().contiguous()
    return (x.view(steps, -1) if steps is not None else x.view(-1)).numpy()


def _channel_tensors(b, nrm, q, like: torch.Tensor):
    """Per-channel threshold b, q = ‖W‖² + ε, reset gain b·‖W‖², ‖W‖² as contiguous `[C]` tensors of `like`'s dtype."""
    ones = torch.ones_like(b)
    gain = b if nrm is None else b * nrm
    return [t.expand_as(b).to(like.dtype).detach().contiguous().view(-1)
            for t in (b, ones if q is None else q, gain, ones if nrm is None else nrm)]


def _channel_arrays(b, nrm, q, like: torch.Tensor):
    """`_channel_tensors` as numpy arrays."""
    return [t.numpy() for t in _channel_tensors(b, nrm, q, like)]


def _compiled_forward(backend, drive, beta, b, nrm, q, cfg, u0, s0, membrane, spikes) -> None:
    """Run the compiled scan; `membrane is drive` writes U over the drive, `spikes is drive` S (one buffer fewer)."""
    steps, channels = drive.shape[0], drive.shape[2]
    inner = drive[0, 0, 0].numel()
    if backend == "triton":
        from spikeforge.functional import lif_triton

        th, qq, gain, _ = _channel_tensors(b, nrm, q, drive)
        lif_triton.lif_forward(drive, beta, th, qq, gain, nrm is not None, cfg.reset, channels, inner, u0, s0, membrane, spikes)
        return
    th, qq, gain, _ = _channel_arrays(b, nrm, q, drive)
    dtype = membrane.numpy().dtype.type
    with lif_cpu.torch_thread_budget():
        lif_cpu.lif_forward(_flat(drive, steps), dtype(beta.item()), th, qq, gain, nrm is not None, lif_cpu.RESET_CODES[cfg.reset],
                            channels, inner, _flat(u0), _flat(s0), membrane.view(membrane.shape[0], -1).numpy(),
                            spikes.view(steps, -1).numpy(), 1 if membrane is drive else 2 if spikes is drive else 0)


def _compiled_backward(ctx, g_spikes, g_membrane):
    cfg = ctx.cfg
    current, beta, threshold, norm, gram, recurrent, u0, s0, membrane, _ = ctx.saved_tensors
    scaled = cfg.input_scale == "one_minus_beta"
    steps, channels = membrane.shape[0], membrane.shape[2]
    inner = membrane[0, 0, 0].numel()
    b = _channel_view(threshold, membrane)
    nrm = None if norm is None else _channel_view(norm, membrane)
    if ctx.compiled == "triton":
        from spikeforge.functional import lif_triton

        th, qq, _, nn_ = _channel_tensors(b, nrm, None if norm is None else nrm + cfg.eps, membrane)
        g_u, parts = lif_triton.lif_backward(g_spikes, g_membrane, membrane, current if scaled else None, beta, th, qq, nn_,
                                             norm is not None, cfg.reset, cfg.surrogate, cfg.scale, channels, inner, u0, s0)
        return _parameter_grads(ctx, g_u.view_as(membrane), parts, beta, norm, scaled)
    th, qq, _, nn_ = _channel_arrays(b, nrm, None if norm is None else nrm + cfg.eps, membrane)
    g_u = torch.empty_like(membrane)
    parts = torch.empty(3, membrane[0].numel(), dtype=membrane.dtype)
    zero_row = membrane.new_zeros(1, membrane[0].numel()).numpy()
    with lif_cpu.torch_thread_budget():
        lif_cpu.lif_backward(
            zero_row if g_spikes is None else _flat(g_spikes, steps),
            zero_row if g_membrane is None else _flat(g_membrane, steps),
            _flat(membrane, steps), _flat(current, steps) if scaled else zero_row,
            beta.item(), th, qq, nn_, lif_cpu.RESET_CODES[cfg.reset],
            lif_cpu.SURROGATE_CODES[cfg.surrogate], float(cfg.scale), channels, inner, _flat(u0), _flat(s0),
            g_u.view(steps, -1).numpy(), parts[0].numpy(), parts[1].numpy(), parts[2].numpy(), any(ctx.needs_input_grad[1:4]))
    return _parameter_grads(ctx, g_u, parts, beta, norm, scaled)


def _channel_sums(parts: torch.Tensor, batch: int, channels: int) -> torch.Tensor:
    """Σ of per-neuron partial sums `[3, N]` over batch and positions → `[3, C]`; on the CPU in a fixed order."""
    if parts.device.type != "cpu":
        return parts.view(3, batch, channels, -1).sum((1, 3))
    out = parts.new_empty(3, channels)
    with lif_cpu.torch_thread_budget():  # a fixed order: the same bits on any thread count
        lif_cpu.channel_sums(parts.numpy(), channels, parts.shape[1] // (batch * channels), out.numpy())
    return out


def _parameter_grads(ctx, g_u, parts, beta, norm, scaled):
    """The Function's gradients from the kernels' gU `[T, B, C, *spatial]` and per-neuron partial sums `[3, N]`.

    Shared by both kernel back-ends: on the Triton path these are CUDA tensors (`_channel_sums` sums them with torch).
    """
    batch, channels = g_u.shape[1:3]
    g_current = g_u * (1 - beta) if scaled else g_u
    if not any(ctx.needs_input_grad[1:4]):  # the CPU kernel left `parts` unwritten
        return g_current, None, None, None, None, None, None, None, None, None, None
    per_channel = _channel_sums(parts, batch, channels)
    g_beta = per_channel[0].sum().reshape(beta.shape) if ctx.needs_input_grad[1] else None  # C values: one thread
    g_threshold = per_channel[1] if ctx.needs_input_grad[2] else None
    g_norm = per_channel[2] if norm is not None and ctx.needs_input_grad[3] else None
    return g_current, g_beta, g_threshold, g_norm, None, None, None, None, None, None, None


class _FusedLIF(torch.autograd.Function):
    """The same model as `lif_reference`, forward and backward each in one pass over the steps.

    Saves only the membrane U, with (1 − β) input scaling the input current, and (PyTorch
    path only) the spikes S; the compiled backward recomputes S from U and the surrogate derivative.
    Compiled path: with `consume` U is written over the current's buffer (marked dirty); without
    `keep_membrane` (no gradient needed) U lives in one scratch row, and with `consume` the CPU
    kernels write S over the current instead.
    """

    @staticmethod
    def forward(ctx, current, beta, threshold, norm, gram, recurrent, u0, s0, cfg, keep_membrane, consume):
        b = _channel_view(threshold, current)
        nrm = None if norm is None else _channel_view(norm, current)
        q = None if norm is None else nrm + cfg.eps
        scaled = cfg.input_scale == "one_minus_beta"
        c = (1 - beta) if scaled else None
        drive_all = current * c if scaled else current
        ctx.cfg = cfg
        ctx.set_materialize_grads(False)  # an unused membrane output gets no [T, …] tensor of zeros
        ctx.compiled = cfg.compiled and _kernel_backend(current, gram, recurrent)  # "numba", "triton" or falsy
        scratch = ctx.compiled and not keep_membrane  # lif_scan passes False only where no gradient is needed
        in_place = (ctx.compiled and consume and not scaled and current.is_contiguous()
                    and current._base is None)  # autograd cannot rebase a view modified by a two-output Function
        if in_place and scratch and ctx.compiled == "numba":  # inference: S overwrites the current handed over
            spikes = current
            ctx.mark_dirty(current)
        else:
            spikes = torch.empty_like(current, memory_format=torch.contiguous_format)
        if in_place and not scratch:  # U overwrites the current the caller handed over
            membrane = current
            ctx.mark_dirty(current)
        else:
            membrane = current.new_empty(1, *current.shape[1:]) if scratch else torch.empty_like(current, memory_format=torch.contiguous_format)
        ctx.save_for_backward(current if scaled else None, beta, threshold, norm, gram, recurrent, u0, s0, membrane,
                              None if ctx.compiled else spikes)
        if ctx.compiled:
            _compiled_forward(ctx.compiled, drive_all, beta, b, nrm, q, cfg, u0, s0, membrane, spikes)
            return spikes, membrane
        u_prev, s_prev = u0, s0
        r_prev = _reset_vector(u_prev, s_prev, b, nrm, gram, cfg.reset)
        for n in range(current.shape[0]):
            u = membrane[n]
            torch.sub(u_prev, r_prev, out=u)
            u.mul_(beta)  # eq. (4): β·(U[n−1] − R[n−1]) ...
            if recurrent is None:
                u.add_(drive_all[n])  # ... + c·I[n]
            else:
                rec = mix_channels(recurrent, s_prev)
                u.add_(drive_all[n] + (rec * c if scaled else rec))
            x = (u if q is None else u / q) - b  # eq. (5)
            spikes[n].copy_(x > 0)
            r_prev = _reset_vector(u, spikes[n], b, nrm, gram, cfg.reset)
            u_prev, s_prev = u, spikes[n]
        return spikes, membrane

    @staticmethod
    def backward(ctx, g_spikes, g_membrane):
        if g_spikes is None and g_membrane is None:
            return (None,) * 11
        cfg = ctx.cfg
        current, beta, threshold, norm, gram, recurrent, u0, s0, membrane, spikes = ctx.saved_tensors
        if ctx.compiled:
            return _compiled_backward(ctx, g_spikes, g_membrane)
        scaled = cfg.input_scale == "one_minus_beta"
        c = (1 - beta) if scaled else 1.0
        b = _channel_view(threshold, membrane)
        nrm = None if norm is None else _channel_view(norm, membrane)
        q = None if norm is None else nrm + cfg.eps
        x = (membrane if q is None else membrane / q) - b
        sg = surrogate_grad(x, cfg.surrogate, cfg.scale)
        k = sg if q is None else sg / q  # ∂S[n]/∂U[n]
        if g_spikes is None:
            g_spikes = torch.zeros_like(membrane)
        # gU[n] = gS[n]·k[n] + gU_mem[n] + (terms through U[n+1]); the latter are linear in gU[n+1].
        g_u = g_spikes * k
        if g_membrane is not None:
            g_u = g_u + g_membrane
        # dU[n+1]/dU[n] = carry[n] (elementwise, through the leak and a per-channel reset)
        #               + k[n]·Mᵀ (across channels, through lateral reset G and recurrence V).
        reset_through_b = cfg.reset == "subtract" and gram is None
        reset_gain = None
        if reset_through_b:
            reset_gain = b if nrm is None else b * nrm
            carry = beta * (1 - reset_gain * k)
        elif cfg.reset == "zero":
            carry = beta * (1 - membrane * k - spikes)
        else:
            carry = beta.expand_as(membrane)
        mixing = None
        if gram is not None:
            mixing = -beta * gram
        if recurrent is not None:
            mixing = c * recurrent if mixing is None else mixing + c * recurrent
        for n in range(membrane.shape[0] - 2, -1, -1):
            g_u[n].addcmul_(carry[n], g_u[n + 1])
            if mixing is not None:
                g_u[n].addcmul_(k[n], mix_channels(mixing.t(), g_u[n + 1]))
        # Parameter gradients, vectorised over the steps.
        g_next = torch.cat([g_u[1:], torch.zeros_like(g_u[:1])])  # gU[n+1]
        s_prev = _shift(spikes, s0)
        u_prev = _shift(membrane, u0)
        g_current = g_u * c if ctx.needs_input_grad[0] else None
        g_beta = None
        if ctx.needs_input_grad[1]:
            r_prev = _reset_vector(u_prev.flatten(0, 1), s_prev.flatten(0, 1), b, nrm, gram, cfg.reset)
            d_beta = u_prev - r_prev.view_as(u_prev)
            if scaled:
                d_beta = d_beta - current
                if recurrent is not None:
                    d_beta = d_beta - _mix_seq(recurrent, s_prev)
            g_beta = (g_u * d_beta).sum().reshape(beta.shape)
        # gS_total[n]: the spike gradient including what flows back through R[n] and V·S[n].
        g_s_total = g_spikes
        if reset_through_b:
            g_s_total = g_s_total - beta * reset_gain * g_next
        elif cfg.reset == "zero":
            g_s_total = g_s_total - beta * membrane * g_next
        if mixing is not None:
            g_s_total = g_s_total + _mix_seq(mixing.t(), g_next)
        g_x = g_s_total * sg
        g_threshold = g_norm = g_gram = g_recurrent = None
        if ctx.needs_input_grad[2]:
            gb = -g_x
            if reset_through_b:
                gb = gb - beta * (1.0 if nrm is None else nrm) * s_prev * g_u
            g_threshold = _sum_to_channel(gb)
        if norm is not None and ctx.needs_input_grad[3]:
            gn = -g_x * membrane / (q * q)
            if reset_through_b:
                gn = gn - beta * b * s_prev * g_u
            g_norm = _sum_to_channel(gn)
        if gram is not None and ctx.needs_input_grad[4]:
            g_gram = -beta * _outer_to_channel(g_u, s_prev)
        if recurrent is not None and ctx.needs_input_grad[5]:
            g_recurrent = c * _outer_to_channel(g_u, s_prev)
        return g_current, g_beta, g_threshold, g_norm, g_gram, g_recurrent, None, None, None, None, None


def lif_scan(
    current: torch.Tensor,
    beta: torch.Tensor | float,
    threshold: torch.Tensor,
    norm: torch.Tensor | None = None,
    gram: torch.Tensor | None = None,
    recurrent: torch.Tensor | None = None,
    *,
    reset: str = "subtract",
    input_scale: str = "none",
    surrogate: str = "sigmoid",
    scale: float = 10.0,
    eps: float = 1e-8,
    initial: tuple[torch.Tensor, torch.Tensor] | None = None,
    impl: str = "fused",
    keep_membrane: bool = True,
    consume_current: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run LIF dynamics (eqs. (4)–(6), low-activity paper) over `current` `[T, B, C, *spatial]`.

    Returns (spikes, membrane), both shaped like `current`. `norm` = ‖W_i‖² per channel
    normalises the threshold (eq. 5); `gram` (lateral reset) needs `reset="subtract"`.
    `impl="reference"` runs the plain autograd loop; `"fused"` the one-pass custom autograd, with
    the compiled CPU kernels where they apply; `"fused_torch"` the same pass as PyTorch ops only.
    `keep_membrane=False` returns (spikes, None); where no gradient is needed the compiled scan
    then does not store the membrane sequence (inference memory and time). `consume_current=True`
    hands `current` over to the scan, which may overwrite it with the membrane, or with the spikes where
    the membrane is not kept (one `[T, …]` buffer fewer); only for a current nothing else keeps (a
    layer's own synaptic current).
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    cfg = LIFConfig(reset=reset, input_scale=input_scale, surrogate=surrogate, scale=scale, eps=eps, compiled=impl == "fused")
    if current.dim() < 3:
        raise ValueError(f"current must be time-major [T, B, C, ...], got shape {tuple(current.shape)}")
    channels = current.shape[2]
    if not torch.is_tensor(beta):
        beta = current.new_tensor(float(beta))
    if beta.dim() != 0:
        raise ValueError(f"beta must be one scalar per layer (0-dim tensor), got shape {tuple(beta.shape)}")
    for name, p, shape in (("threshold", threshold, (channels,)), ("norm", norm, (channels,)),
                           ("gram", gram, (channels, channels)), ("recurrent", recurrent, (channels, channels))):
        if p is not None and tuple(p.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} for {channels} channels (axis 2), got {tuple(p.shape)}")
    if gram is not None and reset != "subtract":
        raise ValueError(f"a lateral reset (gram) needs reset='subtract', got reset={reset!r}")
    if impl == "reference":
        spikes, membrane = lif_reference(current, beta, threshold, norm, gram, recurrent, cfg, initial)
    else:
        u0, s0 = _initial_state(current, initial)
        lean = not keep_membrane and not torch.is_grad_enabled()  # nothing will read U: do not store it
        spikes, membrane = _FusedLIF.apply(current, beta, threshold, norm, gram, recurrent, u0, s0, cfg, not lean,
                                           consume_current)
    return spikes, membrane if keep_membrane else None
