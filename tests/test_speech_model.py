"""KWS models (low-activity paper Table 1, Table 2, §10): size, receptive fields, wiring of time × frequency, LIF equations."""

import pytest
import torch
import torch.nn.functional as F

from spikeforge.models.kws import ABLATIONS, TABLE1_DILATIONS, TABLE1_KERNELS, receptive_fields
from spikeforge.registry import MODELS


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_table1_model_has_013M_parameters():
    model = MODELS.get("kws_dilated")()
    # conv weights 1·64·12 + 2·64·64·12, readout 64·40·12 + 12, β ×3, b 64 ×3
    assert n_params(model) == 768 + 2 * 49152 + 30720 + 12 + 3 + 192 == 129_999
    assert round(n_params(model) / 1e6, 2) == 0.13


def test_receptive_fields_grow_as_table1_and_large_kernels_match_them():
    assert receptive_fields(TABLE1_KERNELS, TABLE1_DILATIONS) == [(4, 3), (16, 9), (64, 27)]
    big = ABLATIONS["kws_large_kernels"]
    assert receptive_fields(big["kernels"], big["dilations"]) == [(4, 3), (16, 9), (64, 27)]
    assert receptive_fields(TABLE1_KERNELS, ABLATIONS["kws_no_dilation"]["dilations"]) == [(4, 3), (7, 5), (10, 7)]


def test_large_kernel_variant_is_table2s_422M():
    assert round(n_params(MODELS.get("kws_large_kernels")()) / 1e6, 2) == 4.22


def test_output_contract_and_init_distributions():
    torch.manual_seed(0)
    model = MODELS.get("kws_dilated")(channels=[8, 8, 8])
    y = model(torch.randn(20, 3, 1, 40))
    assert y.shape == (20, 3, 12) and model.output_reduction == "mean"
    for conv in model.convs:
        assert 0.65 < float(conv.neuron.beta.detach()) < 0.75 and conv.neuron.beta.requires_grad
        assert abs(float(conv.neuron.threshold.detach().mean()) - 1.0) < 0.02 and conv.neuron.threshold.shape == (8,)


def test_variants_nlif_frozen_lateral_deltas():
    nlif = MODELS.get("kws_nlif")(channels=[4, 4, 4])
    assert all(float(c.neuron.beta.detach()) == 1.0 and not c.neuron.beta.requires_grad for c in nlif.convs)
    frozen = MODELS.get("kws_frozen")(channels=[4, 4, 4])
    names = {n for n, _ in frozen.named_parameters()}
    assert not any("beta" in n or "threshold" in n for n in names)
    lateral = MODELS.get("kws_dilated")(channels=[4, 4, 4], lateral=True, in_channels=3)
    assert lateral(torch.randn(10, 2, 3, 40)).shape == (10, 2, 12)
    with pytest.raises(ValueError, match="fixes nlif"):
        MODELS.get("kws_nlif")(nlif=False)


def test_outputs_are_causal_in_time():
    torch.manual_seed(1)
    for name in ("kws_dilated", "kws_cnn"):
        model = MODELS.get(name)(channels=[6, 6, 6])
        x = torch.rand(40, 2, 1, 40) * 3
        x2 = x.clone()
        x2[25:] = torch.rand(15, 2, 1, 40) * 3
        a, b = model(x), model(x2)
        assert torch.equal(a[:25], b[:25]) and not torch.equal(a[25:], b[25:])


def test_cnn_receptive_field_is_64_by_27():
    torch.manual_seed(2)
    cnn = MODELS.get("kws_cnn")(channels=[4, 4, 4])
    for conv in cnn.convs:
        conv.bias.data.fill_(1.0)  # keep the ReLUs open so every path passes gradient
        conv.weight.data.abs_()
    x = torch.rand(1, 1, 100, 40, requires_grad=True)
    h = x
    for conv in cnn.convs:
        h = F.relu(conv(F.pad(h, (0, 0, (conv.kernel_size[0] - 1) * conv.dilation[0], 0))))
    (g,) = torch.autograd.grad(h[0, :, 99, 20].sum(), x)
    g = g[0, 0]
    t_idx, f_idx = g.nonzero(as_tuple=True)
    assert (int(t_idx.min()), int(t_idx.max())) == (36, 99)  # 64 steps
    assert (int(f_idx.min()), int(f_idx.max())) == (7, 33)  # 27 bands centred on 20


def reference_layer(conv, x):
    """Step-by-step eqs. (4)-(5): causal dilated conv over (time, frequency), then the LIF loop."""
    w = conv.weight  # [C_out, C_in, kernel_time, kernel_freq]
    dt, df = conv.time_dilation, conv.dilation[0]
    h = x.permute(1, 2, 0, 3)  # [B, C, T, F]
    h = F.pad(h, (df * (w.shape[3] - 1) // 2,) * 2 + ((w.shape[2] - 1) * dt, 0))
    current = F.conv2d(h, w, dilation=(dt, df)).permute(2, 0, 1, 3)  # [T, B, C_out, F]
    norm = (w.flatten(1) ** 2).sum(1).view(-1, 1)  # ‖W_i‖²
    beta, b = conv.neuron.beta, conv.neuron.threshold.view(-1, 1)
    u = torch.zeros_like(current[0])
    s = torch.zeros_like(current[0])
    out = []
    for n in range(current.shape[0]):
        u = beta * (u - b * norm * s) + current[n]  # eq. (4), reset from S[n−1]
        s = (u / (norm + 1e-8) - b > 0).float()  # eq. (5)
        out.append(s)
    return torch.stack(out)


def test_dilated_layer_matches_the_step_by_step_equations():
    torch.manual_seed(3)
    model = MODELS.get("kws_dilated")(channels=[5, 6, 7])
    x = torch.rand(50, 2, 1, 40) * 4
    for conv in model.convs:
        with torch.no_grad():  # thresholds at the median normalised current: every layer fires, not always
            conv.weight.abs_()
            norm = (conv.weight.flatten(1) ** 2).sum(1).view(-1, 1)
            conv.neuron.threshold.fill_(float((conv.current(x) / norm).median()))
        expected = reference_layer(conv, x)
        got = conv(x)
        assert torch.equal(got, expected)
        assert 0 < float(got.detach().mean()) < 1  # the comparison is not trivially all-zero
        x = got


def test_cnn_has_the_same_conv_geometry_as_the_snn():
    torch.manual_seed(4)
    snn = MODELS.get("kws_dilated")(in_channels=3, channels=[3, 3, 3])
    cnn = MODELS.get("kws_cnn")(in_channels=3, channels=[3, 3, 3])
    x = torch.randn(30, 2, 3, 40)
    for s_conv, c_conv in zip(snn.convs, cnn.convs):
        c_conv.weight.data.copy_(s_conv.weight.data)
        c_conv.bias.data.zero_()
        ref = s_conv.current(x)  # [T, B, C, F]
        h = x.permute(1, 2, 0, 3)
        got = c_conv(F.pad(h, (0, 0, (c_conv.kernel_size[0] - 1) * c_conv.dilation[0], 0))).permute(2, 0, 1, 3)
        assert torch.allclose(got, ref, atol=1e-5)
        x = torch.randn(30, 2, 3, 40)


def test_wrong_input_layout_is_a_clear_error():
    model = MODELS.get("kws_dilated")(channels=[2, 2, 2])
    with pytest.raises(ValueError, match=r"\[T, B, 1, 40\]"):
        model(torch.randn(2, 100, 40))
    with pytest.raises(ValueError, match=r"expected \[T, B, 1, 40\].*dataset.n_mels"):
        model(torch.randn(100, 2, 1, 41))


@pytest.mark.parametrize("name", ["kws_dilated", "kws_cnn"])
def test_readout_pool_averages_the_last_layer_over_groups_of_bands(name):
    torch.manual_seed(0)
    pooled_model = MODELS.get(name)(channels=[4, 4, 4], bands=40, readout_pool=8)
    assert pooled_model.readout.in_features == 4 * 5  # 40 bands in 5 groups of 8
    x = torch.randn(30, 2, 1, 40)
    last = {}
    pooled_model.readout.register_forward_pre_hook(lambda m, args: last.update(h=args[0]))
    full = MODELS.get(name)(channels=[4, 4, 4], bands=40)  # readout_pool=1: the readout sees every band
    full.convs.load_state_dict(pooled_model.convs.state_dict())
    full.readout.register_forward_pre_hook(lambda m, args: last.update(full=args[0]))
    pooled_model(x), full(x)
    assert last["full"].shape == (30, 2, 4, 40) and last["h"].shape == (30, 2, 4, 5)
    torch.testing.assert_close(last["h"], last["full"].view(30, 2, 4, 5, 8).mean(-1))  # the mean of 8 adjacent bands
    with pytest.raises(ValueError, match="divide the 40 bands"):
        MODELS.get(name)(bands=40, readout_pool=3)


def _spiking(model):
    """`model` with thresholds low enough (0.05) that random positive features make every layer fire."""
    with torch.no_grad():
        for conv in model.convs:
            if hasattr(conv, "neuron"):
                conv.neuron.threshold.fill_(0.05)
    return model


@pytest.mark.parametrize("name", ["kws_dilated", "kws_cnn"])
def test_max_readout_takes_the_peak_of_leaky_integrated_scores(name):
    torch.manual_seed(0)
    model = _spiking(MODELS.get(name)(channels=[4, 4, 4], bands=40, time_reduction="max", readout_leak=0.5))
    plain = MODELS.get(name)(channels=[4, 4, 4], bands=40)  # the same weights, per-step scores as Table 1
    plain.load_state_dict(model.state_dict())
    assert (model.output_reduction, plain.output_reduction) == ("max", "mean")
    x = torch.randn(6, 2, 1, 40).abs()
    with torch.no_grad():
        scores, per_step = model(x), plain(x)
    assert per_step.std(0).min() > 0, "the scores must change over time for the test to mean anything"
    expected = torch.zeros_like(per_step)
    expected[0] = per_step[0]
    for n in range(1, 6):
        expected[n] = 0.5 * expected[n - 1] + per_step[n]  # y[n] = β_out·y[n−1] + W·S[n]
    torch.testing.assert_close(scores, expected)
    assert not torch.equal(scores.max(0).values, scores.mean(0))
    with pytest.raises(ValueError, match="'mean' or 'max'"):
        MODELS.get(name)(time_reduction="sum")
    with pytest.raises(ValueError, match=r"β_out\) must be in \[0, 1\]"):
        MODELS.get(name)(readout_leak=1.5)


def test_max_readout_trains_on_the_peak_over_time():
    from spikeforge.metrics.reduce import reduce_time
    from spikeforge.registry import METHODS

    torch.manual_seed(0)
    model = _spiking(MODELS.get("kws_dilated")(channels=[4, 4, 4], bands=40, time_reduction="max", readout_leak=0.9))
    x, y = torch.randn(20, 3, 1, 40).abs(), torch.tensor([0, 5, 11])
    out = METHODS.get("surrogate_bptt")().step(model, x, y)
    with torch.no_grad():
        scores = model(x)
    torch.testing.assert_close(out.logits, scores.max(0).values)
    torch.testing.assert_close(out.loss.detach(), F.cross_entropy(reduce_time(scores, "max"), y))
    assert not torch.allclose(out.loss.detach(), F.cross_entropy(scores.mean(0), y))


def test_band_pools_take_the_max_of_adjacent_bands_between_layers():
    torch.manual_seed(0)
    model = _spiking(MODELS.get("kws_dilated")(channels=[4, 6, 8], bands=40, band_pools=[2, 1, 4], dilations=[[1, 1], [4, 1], [16, 1]]))
    assert model.readout.in_features == 8 * 5  # 40 bands → 20 after layer 1 → 5 after layer 3
    x = torch.randn(30, 2, 1, 40).abs()
    with torch.no_grad():
        h1 = model.convs[0](x)
        h2 = model.convs[1](h1.view(30, 2, 4, 20, 2).amax(-1))  # layer 2 sees the max of each pair of bands
        h3 = model.convs[2](h2).view(30, 2, 8, 5, 4).amax(-1)
        assert 0 < float(h3.mean()) < 1, "the last layer must spike sometimes for the test to mean anything"
        torch.testing.assert_close(model(x), model.readout(h3))


@pytest.mark.parametrize("name", ["kws_dilated", "kws_cnn"])
def test_band_pools_shrink_the_bands_the_readout_sees(name):
    model = MODELS.get(name)(channels=[4, 6, 8], bands=40, band_pools=[2, 2, 1], readout_pool=2)
    last = {}
    model.readout.register_forward_pre_hook(lambda m, args: last.update(h=args[0]))
    assert model(torch.randn(30, 2, 1, 40)).shape == (30, 2, 12)
    assert last["h"].shape == (30, 2, 8, 5) and model.readout.in_features == 8 * 5  # 40 / 2 / 2 bands, then 2 per group
    with pytest.raises(ValueError, match="3 does not divide the 40 bands"):
        MODELS.get(name)(bands=40, band_pools=[3, 1, 1])
    with pytest.raises(ValueError, match="one entry per conv layer"):
        MODELS.get(name)(bands=40, band_pools=[2, 2])


def test_dropout_drops_spikes_in_training_only():
    torch.manual_seed(0)
    model = _spiking(MODELS.get("kws_dilated")(channels=[4, 6, 8], dropout=0.5))
    seen = {}
    model.readout.register_forward_pre_hook(lambda m, args: seen.update(h=args[0]))
    x = torch.randn(30, 2, 1, 40).abs()
    model.eval()
    with torch.no_grad():
        h3 = model.convs[2](model.convs[1](model.convs[0](x)))
        model(x)
    assert 0.1 < float(h3.mean()) < 0.9, "the last layer must spike often for the test to mean anything"
    torch.testing.assert_close(seen["h"], h3)  # eval: every spike reaches the readout
    model.train()
    torch.manual_seed(1)
    with torch.no_grad():
        model(x)
    h = seen["h"]
    assert set(torch.unique(h).tolist()) <= {0.0, 2.0}  # kept spikes scaled by 1/(1 − 0.5)
    kept = float((h > 0).sum() / (h3 > 0).sum())  # of the last layer's spikes (its input differs: dropped spikes below)
    assert 0.3 < kept < 0.7
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        MODELS.get("kws_dilated")(dropout=1.0)
