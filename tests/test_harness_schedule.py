"""Learning-rate schedules, optimisers, gradient clipping by value, full seeding."""

from __future__ import annotations

import math

import pytest
import torch

from spikeforge.train.optim import build_optimizer
from spikeforge.train.schedule import learning_rate
from spikeforge.train.seeding import rng_state, seed_everything, set_rng_state


def test_warmup_then_exponential_decay_by_hand():
    spec = {"name": "warmup_exp", "warmup_epochs": 1.0, "gamma": 0.5}
    lrs = [learning_rate(spec, 1.0, step, steps_per_epoch=4) for step in range(12)]
    # warm-up: (step + 1) / 4 over the first epoch, then ×0.5 per completed epoch
    assert lrs == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5]


@pytest.mark.parametrize("t_mult", [1, 2])
def test_cosine_restarts_matches_torch(t_mult):
    spec = {"name": "cosine_restarts", "t0": 3.0, "t_mult": t_mult, "eta_min": 0.01}
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ref = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=t_mult, eta_min=0.01)
    for step in range(40):
        epoch = step / 4
        ref.step(epoch)
        assert learning_rate(spec, 0.1, step, steps_per_epoch=4) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-12)


def test_cosine_restart_formula_at_half_period():
    spec = {"name": "cosine_restarts", "t0": 2.0, "t_mult": 1, "eta_min": 0.0}
    assert learning_rate(spec, 1.0, 1, steps_per_epoch=1) == pytest.approx(0.5)  # (1 + cos(π/2)) / 2
    assert learning_rate(spec, 1.0, 2, steps_per_epoch=1) == pytest.approx(1.0)  # restart


@pytest.mark.parametrize("name, cls", [("adam", torch.optim.Adam), ("radam", torch.optim.RAdam), ("sgd", torch.optim.SGD)])
def test_optimizers_by_name(name, cls):
    spec = {"name": name, "lr": 0.01, "weight_decay": 1e-5, "betas": [0.8, 0.9], "eps": 1e-8, "momentum": 0.9, "nesterov": True}
    opt = build_optimizer(torch.nn.Linear(2, 2).parameters(), spec)
    assert isinstance(opt, cls) and opt.param_groups[0]["weight_decay"] == 1e-5


def test_optimizer_without_trainable_parameters_is_refused():
    frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(frozen.parameters(), {"name": "sgd", "lr": 0.1, "weight_decay": 0.0, "momentum": 0.0, "nesterov": False})


def test_seeding_and_rng_state_round_trip():
    seed_everything(7)
    state = rng_state()
    a = (torch.rand(3), __import__("numpy").random.rand(), __import__("random").random())
    set_rng_state(state)
    b = (torch.rand(3), __import__("numpy").random.rand(), __import__("random").random())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]
    seed_everything(7)
    assert torch.equal(torch.rand(3), a[0])
    assert not math.isnan(a[1])
