"""Noise-based single-step training (noise-based faster SNN training paper) and its direct-BPTT baseline.

`noise_single_step` trains a network of `NoisyLIF` neurons at T = 1 with membrane noise
(step 1, eq. (5)) and predicts after conversion to `eval_steps` steps (steps 2–3,
eqs. (6)–(9)). `noise_direct_bptt` trains the same network directly at T steps with the LIF of
eqs. (1)–(3) and surrogate BPTT (the baseline of §3.2). Both minimise the MSE between the
output firing rates and the one-hot target (§3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.functional.noisy_lif import MODES, check_steps
from spikeforge.methods.base import Method, StepOutput
from spikeforge.neurons.noisy import NoisyLIF, converted
from spikeforge.registry import METHODS


def mse_rate_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MSE between the mean output over time of `outputs` `[T, B, classes]` and one-hot `targets` `[B]` (§3)."""
    one_hot = F.one_hot(targets, outputs.shape[-1]).to(outputs.dtype)
    return F.mse_loss(outputs.mean(0), one_hot)


def repeat_steps(x: torch.Tensor, steps: int) -> torch.Tensor:
    """A one-step input `[1, B, ...]` (a static sample) repeated to `[steps, B, ...]`; longer inputs are kept."""
    check_steps(steps)
    return x.expand(steps, *x.shape[1:]) if x.shape[0] == 1 else x


class NoiseNetMethod(Method):
    """Train in `train_mode` at `train_steps`, predict in `eval_mode` at `eval_steps`; MSE on output rates."""

    def __init__(self, train_mode: str, train_steps: int, eval_mode: str, eval_steps: int, alpha: float) -> None:
        for name, mode in (("train_mode", train_mode), ("eval_mode", eval_mode)):
            if mode not in MODES:
                raise ValueError(f"{name} must be one of {MODES}, got {mode!r}")
        self.train_mode, self.train_steps = train_mode, check_steps(train_steps)
        self.eval_mode, self.eval_steps = eval_mode, check_steps(eval_steps)
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0 (eq. (9)), got {alpha}")
        self.alpha = alpha

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        """Loss and logits at `train_steps` in `train_mode`; in eval mode (validation, test) at `eval_steps` in `eval_mode`."""
        mode, steps = (self.train_mode, self.train_steps) if model.training else (self.eval_mode, self.eval_steps)
        if x.shape[0] not in (1, steps):
            raise ValueError(f"this method runs at T = {steps} here; got an input of {x.shape[0]} steps (use encoder direct with steps: 1)")
        rates: dict[str, float] = {}
        hooks = [m.register_forward_hook(_rate_hook(rates, name)) for name, m in model.named_modules() if isinstance(m, NoisyLIF)]
        try:
            with converted(model, mode=mode, alpha=self.alpha):
                outputs = model(repeat_steps(x, steps))
        finally:
            for hook in hooks:
                hook.remove()
        return StepOutput(mse_rate_loss(outputs, y), outputs.mean(0).detach(), rates)

    def predict(self, model: nn.Module, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """Scores `[T, B, classes]` at `steps` (default `eval_steps`) after conversion to `eval_mode`."""
        with converted(model, mode=self.eval_mode, alpha=self.alpha):
            return model(repeat_steps(x, self.eval_steps if steps is None else steps))


def _rate_hook(rates: dict[str, float], name: str):
    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        rates[name] = float(output.detach().mean())

    return hook


@METHODS.register("noise_single_step")
def noise_single_step(eval_steps: int = 10, conversion: str = "accumulate", alpha: float = 4.0) -> NoiseNetMethod:
    """Step 1 at T = 1 with noise (eq. (5)); predict after step 2 ("ensemble") or step 3 ("accumulate", eqs. (6)–(9))."""
    return NoiseNetMethod("ensemble", 1, conversion, eval_steps, alpha)


@METHODS.register("noise_direct_bptt")
def noise_direct_bptt(steps: int = 10) -> NoiseNetMethod:
    """§3.2 baseline: the LIF of eqs. (1)–(3) trained directly at T = `steps` with surrogate BPTT."""
    return NoiseNetMethod("lif", steps, "lif", steps, 4.0)
