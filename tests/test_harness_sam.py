"""`optimizer.sam_rho`: sharpness-aware steps (Foret et al. 2021), by hand on a quadratic and inside the Trainer."""

from __future__ import annotations

import pytest
import torch

import spikeforge.train.trainer as trainer_module
from spikeforge.train.config import RecipeError, load_recipe
from spikeforge.train.optim import sharpness_aware_gradient
from spikeforge.train.trainer import Trainer
from test_harness_tiny import FMNIST, tiny_recipe


def test_the_gradient_is_taken_at_the_weights_moved_rho_along_the_normalised_gradient():
    # L(w) = ½·Σ a·w² over two tensors: ∇L = a·w, so at w + ε̂ the gradient is a·(w + ε̂), ε̂ = ρ·a·w / ‖a·w‖
    a1, a2 = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([[0.5, 4.0]])
    w1 = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    w2 = torch.tensor([[3.0, 1.0]], requires_grad=True)
    loss = lambda: 0.5 * ((a1 * w1**2).sum() + (a2 * w2**2).sum())  # noqa: E731
    loss().backward()
    g1, g2 = a1 * w1.detach(), a2 * w2.detach()
    norm = torch.sqrt((g1**2).sum() + (g2**2).sum())  # √(1 + 16 + 2.25 + 2.25 + 16) = √37.5
    assert float(norm) == pytest.approx(37.5**0.5)
    before = (w1.detach().clone(), w2.detach().clone())
    sharpness_aware_gradient([w1, w2], 0.3, loss)
    torch.testing.assert_close(w1.grad, a1 * (before[0] + 0.3 * g1 / norm))
    torch.testing.assert_close(w2.grad, a2 * (before[1] + 0.3 * g2 / norm))
    assert torch.equal(w1.detach(), before[0]) and torch.equal(w2.detach(), before[1])  # the ascent step is undone


@pytest.mark.skipif(not FMNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_the_trainer_takes_each_step_with_the_gradient_at_the_ascended_weights_of_the_same_batch(tmp_path, monkeypatch):
    calls = []

    def recorded(params, rho, loss_at):
        # (ρ, the loss recomputed at the current weights, the loss at w + ε̂)
        calls.append([rho, float(loss_at().detach())])
        sharpness_aware_gradient(params, rho, lambda: (loss := loss_at(), calls[-1].append(float(loss.detach())))[0])

    monkeypatch.setattr(trainer_module, "sharpness_aware_gradient", recorded)
    trained = {}
    for rho in (0.0, 0.05):
        config = load_recipe(str(tiny_recipe(tmp_path)), [f"optimizer.sam_rho={rho}"])
        trainer = Trainer(config, None, log=lambda _: None, progress_bar=False)
        step_losses, check = [], trainer._check_finite
        trainer._check_finite = lambda value, what: (what == "loss is" and step_losses.append(float(value.detach())), check(value, what))
        trainer.fit()
        trained[rho] = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    steps = 2 * 6  # 192 training samples in batches of 32, two epochs
    assert len(calls) == len(step_losses) == steps and all(rho == 0.05 for rho, *_ in calls)  # never called with sam_rho 0
    for (_, again, ascended), loss in zip(calls, step_losses):
        assert again == pytest.approx(loss, rel=1e-6)  # the same batch as the step's
        assert ascended > loss  # a step up the gradient raises the batch's loss
    assert not torch.equal(trained[0.0], trained[0.05])


def test_a_negative_rho_is_refused_by_name(tmp_path):
    with pytest.raises(RecipeError, match="sam_rho"):
        load_recipe(str(tiny_recipe(tmp_path)), ["optimizer.sam_rho=-0.1"])
