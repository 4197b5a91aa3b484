"""noise_single_step and noise_direct_bptt methods: MSE on output rates, T = 1 training, T-step prediction."""

import pytest
import torch

from spikeforge.data.idx import FASHION_MNIST_DEBIAN, fashion_mnist
from spikeforge.methods.noise_single_step import mse_rate_loss, repeat_steps
from spikeforge.neurons.noisy import NoisyLIF
from spikeforge.registry import METHODS, MODELS


def _tiny_cnn(**neuron):
    return MODELS.get("noise_cnn")(channels=[4, 8, 8], hidden=16, **neuron)


def test_mse_rate_loss_hand_worked():
    outputs = torch.tensor([[[0.0, 1.0]], [[1.0, 1.0]]])  # T = 2, B = 1: rates [0.5, 1.0]
    assert torch.isclose(mse_rate_loss(outputs, torch.tensor([1])), torch.tensor(0.125))  # ((0.5)² + 0²) / 2


def test_repeat_steps():
    x = torch.rand(1, 2, 3)
    r = repeat_steps(x, 4)
    assert r.shape == (4, 2, 3) and torch.equal(r[3], x[0])
    assert repeat_steps(torch.rand(5, 2, 3), 4).shape == (5, 2, 3)
    with pytest.raises(ValueError, match="T must be an integer >= 1"):
        repeat_steps(x, 0)


def test_single_step_trains_at_t1_and_predicts_at_eval_steps():
    torch.manual_seed(0)
    model = _tiny_cnn()
    method = METHODS.get("noise_single_step")(eval_steps=5)
    x, y = torch.rand(1, 3, 1, 28, 28), torch.tensor([0, 4, 9])
    out = method.step(model, x, y)
    assert out.logits.shape == (3, 10)
    assert set(out.spike_rates) == {n for n, m in model.named_modules() if isinstance(m, NoisyLIF)}
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    assert method.predict(model, x).shape == (5, 3, 10)
    assert method.predict(model, x, steps=20).shape == (20, 3, 10)
    assert all(m.mode == "ensemble" for m in model.modules() if isinstance(m, NoisyLIF))
    model.train()
    with pytest.raises(ValueError, match="runs at T = 1 here"):
        method.step(model, torch.rand(4, 3, 1, 28, 28), y)
    with pytest.raises(ValueError, match="T must be an integer >= 1"):
        method.predict(model, x, steps=0)


def test_method_options_are_checked():
    with pytest.raises(ValueError, match="alpha must be > 0"):
        METHODS.get("noise_single_step")(alpha=0.0)
    with pytest.raises(ValueError, match="eval_mode must be one of"):
        METHODS.get("noise_single_step")(conversion="average")
    with pytest.raises(ValueError, match="T must be an integer >= 1"):
        METHODS.get("noise_direct_bptt")(steps=0)


def test_direct_bptt_backpropagates_through_t_steps():
    torch.manual_seed(0)
    model = _tiny_cnn()
    method = METHODS.get("noise_direct_bptt")(steps=4)
    out = method.step(model, torch.rand(1, 2, 1, 28, 28) * 3, torch.tensor([1, 2]))
    out.loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.skipif(not FASHION_MNIST_DEBIAN.is_dir(), reason="needs apt package dataset-fashion-mnist")
def test_single_step_training_learns_fashion_mnist_and_converts():
    torch.manual_seed(0)
    train = fashion_mnist(split="train", limit=1024)
    x = train.tensors[0].unsqueeze(0)  # [1, N, 1, 28, 28]
    y = train.tensors[1]
    model = _tiny_cnn()
    method = METHODS.get("noise_single_step")(eval_steps=10)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(3):
        for i in range(0, 1024, 64):
            out = method.step(model, x[:, i : i + 64], y[i : i + 64])
            opt.zero_grad()
            out.loss.backward()
            opt.step()
    model.eval()
    test = fashion_mnist(split="test", limit=512)
    xt, yt = test.tensors[0].unsqueeze(0), test.tensors[1]
    with torch.no_grad():
        acc10 = (method.predict(model, xt).mean(0).argmax(1) == yt).float().mean().item()
    assert acc10 > 0.5  # chance is 0.1


def test_evaluation_step_scores_the_converted_network_at_eval_steps():
    torch.manual_seed(0)
    model = _tiny_cnn()
    method = METHODS.get("noise_single_step")(eval_steps=4)
    x, y = torch.rand(1, 3, 1, 28, 28), torch.tensor([0, 4, 9])
    model.eval()
    torch.manual_seed(1)
    out = method.step(model, x, y)
    torch.manual_seed(1)
    scores = method.predict(model, x)
    assert scores.shape[0] == 4
    torch.testing.assert_close(out.logits, scores.mean(0))
    torch.testing.assert_close(out.loss, mse_rate_loss(scores, y))
