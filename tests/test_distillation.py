"""Knowledge distillation (Hinton et al. 2015): the softened KL by hand, its gradient, and the teachers' ensemble."""

from __future__ import annotations

import math

import pytest
import torch

from spikeforge.methods.distillation import Teachers, distillation_loss


def test_distillation_loss_is_t_squared_kl_by_hand_with_gradient_t_times_q_minus_p():
    z = torch.tensor([[2.0, 0.0], [0.0, 0.0]], requires_grad=True)
    p = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    # T = 2: q = softmax(z / 2) = (e/(e+1), 1/(e+1)) and (½, ½); KL(p‖q) = Σ p·log(p/q), mean over the batch of 2
    q1 = (math.e / (math.e + 1), 1 / (math.e + 1))
    kl1 = 0.5 * math.log(0.5 / q1[0]) + 0.5 * math.log(0.5 / q1[1])
    kl2 = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    loss = distillation_loss(z, p, 2.0)
    assert float(loss) == pytest.approx(4 * (kl1 + kl2) / 2)
    loss.backward()
    q = torch.softmax(z.detach() / 2, -1)
    assert torch.allclose(z.grad, 2 * (q - p) / 2)  # T·(q − p) / B
    assert float(distillation_loss(torch.tensor([[1.0, 3.0]]), torch.softmax(torch.tensor([[0.5, 1.5]]), -1), 2.0)) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="distil from runs trained on the same classes"):
        distillation_loss(torch.zeros(2, 3), torch.full((2, 2), 0.5), 1.0)


def test_teachers_and_distillation_keys_explain_bad_values(tmp_path):
    from spikeforge.registry import METHODS

    with pytest.raises(ValueError, match="lists no run folders"):
        Teachers([], 2.0)
    with pytest.raises(FileNotFoundError, match="is not a run folder"):
        Teachers([str(tmp_path)], 2.0).probabilities(torch.zeros(3, 2, 5))
    for bad in ({"distill_weight": 1.5}, {"distill_temperature": 0.0}):
        with pytest.raises(ValueError, match="distill_weight α weighs"):
            METHODS.get("surrogate_bptt")(distill_from=[str(tmp_path)], **bad)
