"""Conversion constraints (eqs. 10, 11), ANN → ReL-PSP conversion (§2.2), the two stage methods and models."""

import pytest
import torch
from torch import nn

from forked_ranks import run_two_ranks
from spikeforge.data.idx import FASHION_MNIST_DEBIAN, load_idx_split
from spikeforge.losses.conversion import activation_constraint_loss, constraint_report, normalised_preactivation, weight_sum_loss
from spikeforge.methods.hybrid_temporal import ann_forward, calibrate_output_threshold, calibrate_windows, convert_to_snn
from spikeforge.registry import METHODS, MODELS
from spikeforge.train.distributed import sum_over_group


def test_weight_sum_loss_hand_example():
    linear = torch.tensor([[0.5, 0.5, 0.2], [1.0, -0.5, 0.0]])  # sums 1.2 and 0.5 → |0.2| + |−0.5|
    conv = torch.full((2, 1, 2, 2), 0.25)  # sums exactly 1
    assert torch.isclose(weight_sum_loss([linear, conv]), torch.tensor(0.7))


def test_activation_constraint_loss_hand_example():
    u = torch.tensor([[1.0, 3.0], [-1.0, 5.0]])  # mean 2, std sqrt(20/3)
    u_prime = (u - 2.0) / (3.0 * torch.sqrt(torch.tensor(20.0 / 3.0)))
    expected = (u - u_prime).abs().sum(1).mean()
    assert torch.isclose(activation_constraint_loss([u]), expected)
    already = torch.tensor([[-1.0, 1.0], [-1.0, 1.0]]) / 3.0 * (3.0 / 4.0) ** 0.5  # unbiased std 1/3, mean 0
    assert activation_constraint_loss([already]) < 1e-6
    u.requires_grad_()
    activation_constraint_loss([u]).backward()
    assert torch.allclose(u.grad, torch.sign(u.detach() - u_prime) / 2), "U′ is a fixed target"


def _u_prime_on_two_ranks(rank: int, u: torch.Tensor, out: dict) -> None:
    """Each rank's U′ of its half of the batch, with the moments summed over both ranks."""
    out[rank] = normalised_preactivation(u[2 * rank : 2 * rank + 2], sum_over_group)


def test_u_prime_of_a_data_parallel_step_is_that_of_the_global_batch(tmp_path):
    u = torch.randn(4, 6, generator=torch.Generator().manual_seed(0)) * 2.0 + 1.0
    out = run_two_ranks(_u_prime_on_two_ranks, str(tmp_path / "store"), u)
    halves = [out[0], out[1]]
    whole = normalised_preactivation(u)
    torch.testing.assert_close(torch.cat(halves), whole)  # mean 0 and std 1/3 over all 4 samples, to float rounding
    assert not torch.allclose(normalised_preactivation(u[:2]), whole[:2], atol=1e-3)  # each rank's own moments differ
    torch.testing.assert_close(normalised_preactivation(u, lambda t: t), whole)  # the moment sums, one process


def test_constraint_report_table1():
    w = torch.tensor([[0.6, 0.5], [0.2, 0.7]])
    report = constraint_report({"fc": w}, {"fc": torch.tensor([[0.5, 1.5], [0.2, 0.9]])})
    assert report["fc"]["weight_sum_min"] == pytest.approx(0.9)
    assert report["fc"]["weight_sum_max"] == pytest.approx(1.1)
    assert report["fc"]["h_below_1"] == pytest.approx(0.75)


def _constrained(shape_out: int, shape_in: int, gen: torch.Generator, mixed: float) -> torch.Tensor:
    """Weights [out, in] that sum to exactly 1 per output unit, with a zero-sum mixed-sign part of size `mixed`."""
    w = torch.rand(shape_out, shape_in, generator=gen)
    w = w / w.sum(1, keepdim=True)
    noise = torch.randn(shape_out, shape_in, generator=gen) * mixed / shape_in
    return w + noise - noise.mean(1, keepdim=True)


@pytest.mark.skipif(not FASHION_MNIST_DEBIAN.exists(), reason="needs Debian's dataset-fashion-mnist")
def test_constrained_network_snn_argmax_agrees_with_ann():
    gen = torch.Generator().manual_seed(0)
    x, _ = load_idx_split(FASHION_MNIST_DEBIAN, "test")
    x = x[:256]
    ann = MODELS.get("hybrid_fc2")(hidden=64)
    with torch.no_grad():
        ann[1].weight.copy_(_constrained(64, 784, gen, mixed=3.0))
        ann[3].weight.copy_(_constrained(10, 64, gen, mixed=20.0))
    logits, pre = ann_forward(ann, x)
    assert (ann[1].weight < 0).any() and (ann[3].weight < 0).any()
    assert all((u < 1).all() for _, u in pre), "both constraints hold on this batch"
    snn = convert_to_snn(ann, force_firing=True)
    t_out, stats = snn.run(x)
    agree = (t_out.argmin(1) == logits.argmax(1)).float().mean()
    assert agree >= 0.99
    assert stats["silent/layer1"] == 0.0 and stats["silent/layer2"] == 0.0


def test_nonnegative_constrained_c2f3_is_exact():
    # non-negative weights with unit sums (analog stem too): every spike follows all its inputs, so
    # t^l = l + 1 − h^l and the output times are L + 1 − u^L exactly (eqs. 7, 8; max-pool → min-pool)
    gen = torch.Generator().manual_seed(5)
    ann = MODELS.get("hybrid_c2f3")()
    with torch.no_grad():
        for _, module in ann.named_children():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                w = torch.rand(module.weight.shape, generator=gen)
                module.weight.copy_(w / w.flatten(1).sum(1).view(-1, *[1] * (w.dim() - 1)))
    x = torch.rand(3, 1, 28, 28, generator=gen)
    logits, _ = ann_forward(ann, x)
    snn = convert_to_snn(ann, force_firing=True, analog_layers=1)
    assert snn.analog is not None and len([m for m in snn.layers if hasattr(m, "weight")]) == 4
    t_out = snn(x)
    assert torch.allclose(t_out, 5.0 - logits, atol=1e-5)


def test_unmappable_layers_are_named():
    with pytest.raises(ValueError, match=r"layer '2' \(BatchNorm1d\)"):
        convert_to_snn(nn.Sequential(nn.Flatten(), nn.Linear(4, 3, bias=False), nn.BatchNorm1d(3), nn.Linear(3, 2, bias=False)))
    with pytest.raises(ValueError, match=r"layer '0' \(Linear\).*bias"):
        convert_to_snn(nn.Sequential(nn.Linear(4, 3)))
    with pytest.raises(ValueError, match=r"layer '1' \(AvgPool2d\)"):
        convert_to_snn(nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.AvgPool2d(2)))
    with pytest.raises(ValueError, match="overlapping|non-overlapping"):
        convert_to_snn(nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.MaxPool2d(3, stride=1)))
    with pytest.raises(ValueError, match="analog_layers"):
        convert_to_snn(nn.Sequential(nn.Linear(4, 3, bias=False)), analog_layers=1)


def test_conversion_copies_weights_and_leaves_ann_alone():
    ann = MODELS.get("hybrid_fc2")(hidden=16)
    before = [p.clone() for p in ann.parameters()]
    snn = convert_to_snn(ann)
    with torch.no_grad():
        for p in snn.parameters():
            p.add_(1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, ann.parameters()))
    assert torch.allclose(snn.layers[1].weight - 1.0, ann[1].weight, atol=1e-6)


def test_dead_layer_reports_silent_fraction_not_nan():
    ann = MODELS.get("hybrid_fc2")(hidden=8)
    with torch.no_grad():
        ann[1].weight.fill_(-0.01)  # Σw < 0: no hidden neuron can fire
    snn = convert_to_snn(ann, force_firing=False)
    t_out, stats = snn.run(torch.rand(4, 1, 28, 28))
    assert stats["silent/layer1"] == 1.0
    assert torch.isfinite(t_out).all()


def test_methods_step_and_predict():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 6, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (6,), generator=gen)
    ann = MODELS.get("hybrid_fc2")(hidden=32)
    out = METHODS.get("hybrid_ann")(lambda_w=0.1, lambda_a=0.01).step(ann, x, y)
    assert out.loss.requires_grad and set(out.extras) == {"ce", "l_wsum", "l_acti"}
    expected = out.extras["ce"] + 0.1 * out.extras["l_wsum"] + 0.01 * out.extras["l_acti"]
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    snn = convert_to_snn(ann)
    method = METHODS.get("stdbp")()
    out = method.step(snn, x, y)
    out.loss.backward()
    assert snn.layers[1].weight.grad.abs().sum() > 0
    assert method.predict(snn, x).shape == (1, 6, 10)
    with pytest.raises(ValueError, match="steps: 1"):
        method.step(snn, x.expand(3, *x.shape[1:]), y)


def test_snn_models_build_and_run():
    assert MODELS.get("hybrid_fc2_snn")()(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert MODELS.get("hybrid_c2f3_snn")()(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert MODELS.get("hybrid_cifar_cnn")()(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def _fc2_with_large_logits(seed: int, hidden: int = 32) -> tuple[nn.Sequential, torch.Tensor]:
    """FC2 with unit weight sums, hidden units averaging 4 pixels each (h ∈ [0, 1)) and output logits well above 1."""
    gen = torch.Generator().manual_seed(seed)
    ann = MODELS.get("hybrid_fc2")(hidden=hidden)
    pixels = torch.randint(0, 784, (hidden, 4), generator=gen)
    with torch.no_grad():
        ann[1].weight.zero_().scatter_add_(1, pixels, torch.full((hidden, 4), 0.25))
        ann[3].weight.copy_(_constrained(10, hidden, gen, mixed=100.0))
    return ann, torch.rand(200, 1, 28, 28, generator=gen)


def test_output_threshold_keeps_the_ann_ranking_exactly():
    # Σw = 1 and hidden spikes in [1, 2]: with ϑ_out above every partial sum the output fires after its last
    # input, at t = (ϑ_out + Σ w_i t_i)/Σ w_i = ϑ_out + 2 − u (eqs. 6–7 one layer up)
    ann, x = _fc2_with_large_logits(1)
    logits, _ = ann_forward(ann, x)
    assert logits.max() > 1.5, "the test needs outputs that break ϑ = 1"
    theta = 200.0
    t_out = convert_to_snn(ann, force_firing=True, output_threshold=theta)(x)
    assert torch.allclose(t_out, theta + 2.0 - logits, atol=1e-3)
    with pytest.raises(ValueError, match="output_threshold"):
        convert_to_snn(ann, output_threshold=0.0)


def _two_layer_hand_example() -> tuple[nn.Sequential, torch.Tensor]:
    ann = nn.Sequential(nn.Linear(3, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():  # every unit's weights sum to 1
        ann[0].weight.copy_(torch.tensor([[1.5, -0.5, 0.0], [-1.0, 1.0, 1.0]]))
        ann[2].weight.copy_(torch.tensor([[0.6, 0.4], [-0.2, 1.2]]))
    return ann, torch.tensor([[1.0, 0.0, 0.5]])  # u1 = (1.5, −0.5), h1 = (1.5, 0), u2 = (0.9, −0.3)


def test_hidden_threshold_widens_the_window_and_keeps_activations_above_one_exact():
    # Hand-worked (module note of neurons/relpsp.py). Input times t0 = 1 − x = (0, 1, 0.5), c0 = 1. Layer 1 with
    # ϑ1 = 2: unit a sees V = 1.5·t until t = 1 (peak 1.5 < 2), then slope Σw = 1, so it fires at t = 1.5 = c0 + ϑ1 − 1.5;
    # unit b (u = −0.5) would fire at 3.5 and is forced to c1 = c0 + ϑ1 = 3 (activation 0). Output layer, ϑ = 1:
    # t = c1 + 1 − u2 = (3.1, 4.3).
    ann, x = _two_layer_hand_example()
    snn = convert_to_snn(ann, force_firing=True, hidden_thresholds=[2.0])
    hidden, output = snn.spiking_layers()
    assert (hidden.zero_time, hidden.threshold, output.zero_time, output.threshold) == (1.0, 2.0, 3.0, 1.0)
    t_hidden, _ = hidden(torch.tensor([[0.0, 1.0, 0.5]]))
    assert torch.allclose(t_hidden, torch.tensor([[1.5, 3.5]]))
    assert torch.allclose(snn(x), torch.tensor([[3.1, 4.3]]))
    # the paper's ϑ = 1: unit a crosses 1 at t = 2/3, before its last input, and codes 2 − 2/3 = 4/3 instead of 1.5
    t_paper = convert_to_snn(ann, force_firing=True)(x)
    assert torch.allclose(t_paper, torch.tensor([[2.0 + 1.0 - (0.6 * 4 / 3), 2.0 + 1.0 - (-0.2 * 4 / 3)]]))
    with pytest.raises(ValueError, match="hidden_thresholds needs 1 values"):
        convert_to_snn(ann, hidden_thresholds=[2.0, 2.0])
    with pytest.raises(ValueError, match="thresholds > 0"):
        convert_to_snn(ann, hidden_thresholds=[0.0])


def test_calibrated_windows_are_the_largest_activations_and_at_least_one():
    ann, x = _two_layer_hand_example()
    x = torch.cat([x, torch.tensor([[0.2, 0.2, 0.2]])])  # u1 = (0.2, 0.2): below 1
    assert calibrate_windows(ann, x, analog_layers=0) == (1.0, [1.5])
    assert calibrate_windows(ann, x[1:], analog_layers=0) == (1.0, [1.0])
    stem = nn.Sequential(nn.Linear(3, 3, bias=False), nn.ReLU(), *ann)  # the first layer stays analog
    with torch.no_grad():
        stem[0].weight.copy_(3.0 * torch.eye(3))  # analog outputs a = 3·x = (3, 0, 1.5): the paper's c_0 = 1 clips them
    window, hidden = calibrate_windows(stem, x, analog_layers=1)
    assert (window, hidden) == (3.0, [4.5])  # u1 = W1·a = (4.5, −1.5)
    # c_0 = 3, t0 = 3 − a = (0, 3, 1.5); c_1 = 3 + 4.5; u2 = (2.7, −0.9) ≤ ϑ_out = 3: t = c_1 + 3 − u2
    snn = convert_to_snn(stem, force_firing=True, analog_layers=1, hidden_thresholds=hidden, input_window=window, output_threshold=3.0)
    assert torch.allclose(snn(x[:1]), torch.tensor([[7.8, 11.4]]))
    clipped = convert_to_snn(stem, force_firing=True, analog_layers=1, hidden_thresholds=hidden, output_threshold=3.0)(x[:1])
    assert not torch.allclose(clipped, torch.tensor([[7.8, 11.4]]), atol=0.1)
    with pytest.raises(ValueError, match="needs an analog stem"):
        convert_to_snn(ann, input_window=2.0)


def test_calibrated_output_threshold_agrees_with_the_ann_where_one_does_not():
    ann, x = _fc2_with_large_logits(2)
    target = ann_forward(ann, x)[0].argmax(1)
    snn = convert_to_snn(ann, force_firing=True)
    agree_one = (snn(x).argmin(1) == target).float().mean().item()
    theta = calibrate_output_threshold(ann, snn, x)
    assert snn.layers[-1].threshold == 1.0, "calibration leaves the network as it was"
    agree = (convert_to_snn(ann, force_firing=True, output_threshold=theta)(x).argmin(1) == target).float().mean().item()
    assert agree_one < 0.95 and theta > 1.0 and agree > agree_one and agree >= 0.99


def test_calibration_keeps_threshold_one_when_it_is_best():
    gen = torch.Generator().manual_seed(3)
    ann = MODELS.get("hybrid_fc2")(hidden=16)
    with torch.no_grad():
        ann[1].weight.copy_(_constrained(16, 784, gen, mixed=0.0))
        ann[3].weight.copy_(_constrained(10, 16, gen, mixed=0.0))  # u ≤ 1: every candidate is exact, the tie goes to 1
    x = torch.rand(50, 1, 28, 28, generator=gen)
    assert calibrate_output_threshold(ann, convert_to_snn(ann), x) == 1.0


def test_lambda_a_per_layer():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 6, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (6,), generator=gen)
    ann = MODELS.get("hybrid_fc2")(hidden=32)
    _, pre = ann_forward(ann, x[0])
    out = METHODS.get("hybrid_ann")(lambda_w=0.0, lambda_a=[0.5, 0.0]).step(ann, x, y)
    expected = out.extras["ce"] + 0.5 * activation_constraint_loss([pre[0][1]]).item()
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="one per weighted layer"):
        METHODS.get("hybrid_ann")(lambda_a=[0.1, 0.1, 0.1]).step(ann, x, y)


def test_projected_weight_sums_are_one_after_every_step_and_analog_layers_are_left_alone():
    torch.manual_seed(0)
    ann = MODELS.get("hybrid_kws")()
    method = METHODS.get("hybrid_ann")(lambda_w=0.0, lambda_a=0.0, analog_layers=1, project_weight_sums=True)
    layers = [m for m in ann.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    analog_before = layers[0].weight.detach().clone()
    assert not torch.allclose(layers[1].weight.flatten(1).sum(1), torch.ones(1))
    method.after_step(ann)
    for layer in layers[1:]:  # every spiking layer: Σ_i w_ij = 1 for each unit j (eq. 10's constraint, exactly)
        torch.testing.assert_close(layer.weight.flatten(1).sum(1), torch.ones(layer.weight.shape[0]), rtol=0, atol=1e-5)
    assert torch.equal(layers[0].weight, analog_before)
    ann2 = MODELS.get("hybrid_kws")()
    last = [m for m in ann2.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][-1]
    before = last.weight.detach().clone()
    METHODS.get("hybrid_ann")(lambda_w=0.0, lambda_a=0.0, analog_layers=1).after_step(ann2)
    assert torch.equal(last.weight, before)  # off by default


def test_stdbp_projection_keeps_unit_weight_sums_through_a_step():
    ann, x = _two_layer_hand_example()
    snn = convert_to_snn(ann, force_firing=True, hidden_thresholds=[2.0])
    y = torch.tensor([1])
    method = METHODS.get("stdbp")(project_weight_sums=True)
    opt = torch.optim.SGD(snn.parameters(), lr=0.1)
    out = method.step(snn, x.unsqueeze(0), y)
    out.loss.backward()
    grad = snn.spiking_layers()[0].weight.grad[0].clone()
    opt.step()
    method.after_step(snn)
    for layer in snn.spiking_layers():
        torch.testing.assert_close(layer.weight.sum(1), torch.ones(layer.weight.shape[0]), rtol=0, atol=1e-6)
    assert abs(grad.sum()) > 1e-3, "the raw STDBP step moves the weight sum"
    plain = convert_to_snn(ann, force_firing=True, hidden_thresholds=[2.0])
    METHODS.get("stdbp")().step(plain, x.unsqueeze(0), y).loss.backward()
    torch.optim.SGD(plain.parameters(), lr=0.1).step()
    assert not torch.allclose(plain.spiking_layers()[0].weight.sum(1), torch.ones(2))  # off by default
