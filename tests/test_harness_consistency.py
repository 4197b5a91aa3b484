"""Consistency training (AugMix's Jensen–Shannon term): the divergence by hand, the method's loss, paired batches, a run."""

import math

import pytest
import torch
from torch import nn

from spikeforge.layers import Readout, SpikingLinear
from spikeforge.losses.consistency import js_consistency
from spikeforge.registry import LOSSES, METHODS
from spikeforge.train.runfolder import read_history
from spikeforge.train.sampling import EpochBatchSampler
from test_harness_tiny import tiny_kws_recipe, train_run
from test_speech_loeo import corpus  # noqa: F401  (the three-engine corpus fixture)


class Net(nn.Sequential):
    output_reduction = "mean"


def kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def test_js_consistency_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [1.0, 2.0], [1.0, 2.0]])  # clip 1: (.5, .5) and (.75, .25); clip 2: equal views
    m = (0.625, 0.375)
    expected = ((kl((0.5, 0.5), m) + kl((0.75, 0.25), m)) / 2 + 0.0) / 2  # 1/V Σ_v KL(p_v ‖ m), mean over the two clips
    assert float(js_consistency(logits, 2)) == pytest.approx(expected, rel=1e-6)
    apart = torch.tensor([[30.0, 0.0], [0.0, 30.0]])  # two certain, opposite answers: JS = ln 2
    assert float(js_consistency(apart, 2)) == pytest.approx(math.log(2), rel=1e-6)
    with pytest.raises(ValueError, match="not a multiple of 2 views"):
        js_consistency(torch.zeros(3, 2), 2)


def test_method_adds_the_weighted_divergence_of_the_views_in_training_only():
    torch.manual_seed(0)
    model = Net(SpikingLinear(5, 6, threshold_init=0.05), Readout(6, 3))
    x, y = torch.rand(7, 4, 5), torch.tensor([0, 0, 2, 2])  # two clips, two views each (rows 0-1, 2-3)
    method = METHODS.get("surrogate_bptt")(consistency=3.0)
    assert method.views == 2 and METHODS.get("surrogate_bptt")().views == 1
    out = method.step(model, x, y)
    scores = model(x)
    js = js_consistency(scores.mean(0), 2)
    assert float(js.detach()) > 0
    expected = LOSSES.get("cross_entropy")(scores, y) + 3.0 * js
    assert float(out.loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert out.extras["consistency_loss"] == pytest.approx(float(js.detach()), rel=1e-6)
    model.eval()  # validation and test: the clips as they are, no pairs
    assert float(method.step(model, x, torch.tensor([0, 1, 2, 0])).loss.detach()) == pytest.approx(
        float(LOSSES.get("cross_entropy")(model(x), torch.tensor([0, 1, 2, 0])).detach()))
    model.train()
    with pytest.raises(ValueError, match="labels do not come in pairs"):
        method.step(model, x, torch.tensor([0, 1, 2, 2]))
    with pytest.raises(ValueError, match="use one of them"):
        METHODS.get("surrogate_bptt")(consistency=1.0, mixup=0.2)
    with pytest.raises(ValueError, match="method.consistency is the weight"):
        METHODS.get("surrogate_bptt")(consistency=-1.0)


def test_sampler_gives_every_sample_of_a_batch_twice_in_a_row():
    once, twice = EpochBatchSampler(40, 8, seed=2), EpochBatchSampler(40, 8, seed=2, views=2)
    for a, b in zip(once, twice):
        assert len(b) == 16 and b[0::2] == a and b[1::2] == a
    ranks = [EpochBatchSampler(40, 8, seed=2, rank=r, world_size=2, views=2) for r in range(2)]
    for a, *parts in zip(once, *ranks):  # a sample's two views stay on one rank
        assert sorted(parts[0][0::2] + parts[1][0::2]) == sorted(a) and all(p[0::2] == p[1::2] for p in parts)
    with pytest.raises(ValueError, match="views is how many times"):
        EpochBatchSampler(40, 8, seed=0, views=0)


def test_training_run_with_consistency_logs_the_divergence_of_differently_augmented_views(corpus, tmp_path):  # noqa: F811
    recipe = tiny_kws_recipe(tmp_path / "tiny.yaml", {"root": str(corpus), "time_shift_steps": 4, "freq_masks": 1, "freq_mask_bands": 2},
                             name="consistency_tiny")
    run = train_run(recipe, tmp_path / "runs", "--set", "method.consistency=2.0")
    trained = [r for r in read_history(run) if r["epoch"] > 0]
    assert trained and all(r["train_consistency_loss"] > 0 for r in trained)  # the two views were augmented apart
