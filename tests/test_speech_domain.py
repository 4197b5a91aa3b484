"""Domain-adversarial training: the gradient reversal, the domain labels of the speech dataset, the method's loss, a run."""

import nir
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.cli import main
from spikeforge.data.speech_commands import speaker_of
from spikeforge.layers import Readout, SpikingLinear
from spikeforge.layers.domain import DomainHead, grad_reverse
from spikeforge.registry import DATASETS, LOSSES, METHODS, MODELS
from spikeforge.train.runfolder import read_history
from test_harness_tiny import tiny_kws_recipe, train_run
from test_speech_loeo import ENGINES, corpus  # noqa: F401  (the three-engine corpus fixture)


def test_grad_reverse_is_identity_forward_and_minus_lambda_backward():
    x = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(3, 4)
    y = grad_reverse(x, 0.7)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -0.7 * w)


def test_dataset_labels_each_training_clip_with_its_engine(corpus):  # noqa: F811
    load = DATASETS.get("speech_commands")
    train = load(root=corpus, split="train", cache=False, silence=2, domains="engine")
    assert train.domain_names == sorted(ENGINES)
    for i, source in enumerate(train.sources):
        expected = -1 if source is None else sorted(ENGINES).index(list(ENGINES)[int(speaker_of(source)[:2], 16)])
        x, y, labels = train[i]
        assert labels == {"domain": expected} and y == int(train.targets[i]) and torch.equal(x, train.features[i])
    assert sum(d == -1 for d in train.domains.tolist()) == 2  # the silence clips
    left = load(root=corpus, split="train", cache=False, silence=0, domains="engine", exclude_engines=["alpha"])
    assert set(left.domains.tolist()) == {1, 2}  # indices among every engine of speakers.csv, so every fold's model agrees
    assert len(load(root=corpus, split="test", cache=False, silence=0, domains="engine")[0]) == 2  # only training clips carry one
    with pytest.raises(ValueError, match="needs 'speaker' and 'accent'"):
        load(root=corpus, split="train", cache=False, domains="accent")


class Net(nn.Module):
    """A spiking layer and a readout, with a domain classifier on the layer's spikes (as KWSNet's `domain_classes`)."""

    output_reduction = "mean"

    def __init__(self, domains: int | None) -> None:
        super().__init__()
        self.layer, self.readout = SpikingLinear(5, 6, threshold_init=0.05), Readout(6, 3)
        self.domain_head = DomainHead(6, domains) if domains else None

    def forward(self, x):
        return self.readout(self.layer(x))


def _net(domains):
    torch.manual_seed(0)
    return Net(domains)


def test_domain_loss_is_the_head_cross_entropy_on_time_averaged_spikes_with_reversed_gradient():
    x, y, d = torch.rand(7, 4, 5), torch.tensor([0, 2, 1, 2]), torch.tensor([0, 1, -1, 1])
    method = METHODS.get("surrogate_bptt")(domain_adversary=0.5)
    model = _net(2)
    out = method.step(model, x, y, domain=d)
    spikes = model.layer(x)
    task = LOSSES.get("cross_entropy")(model.readout(spikes), y)
    keep = d >= 0
    adv = F.cross_entropy(model.domain_head(spikes.mean(0)[keep]), d[keep])
    assert float(out.loss.detach()) == pytest.approx(float((task + adv).detach()), rel=1e-6)
    assert out.extras["domain_loss"] == pytest.approx(float(adv.detach()), rel=1e-6)
    # gradients: the head descends CE, the layer below gets the task's gradient minus λ times CE's
    out.loss.backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    task_grad = torch.autograd.grad(task, model.layer.weight, retain_graph=True)[0]
    adv_grads = torch.autograd.grad(adv, [model.layer.weight, model.domain_head.out.weight])
    assert torch.allclose(got["layer.weight"], task_grad - 0.5 * adv_grads[0], atol=1e-6)
    assert torch.allclose(got["domain_head.out.weight"], adv_grads[1], atol=1e-7)
    assert adv_grads[0].abs().sum() > 0  # the reversal has something to reverse
    model.eval()  # validation and test: the task loss only
    assert float(method.step(model, x, y).loss.detach()) == pytest.approx(float(LOSSES.get("cross_entropy")(model(x), y).detach()), rel=1e-6)


def test_domain_adversary_ramps_in_with_the_regulariser_and_explains_missing_parts():
    x, y, d = torch.rand(7, 4, 5), torch.tensor([0, 2, 1, 2]), torch.tensor([0, 1, 0, 1])
    method = METHODS.get("surrogate_bptt")(domain_adversary=0.5, reg_warmup=2)
    model = _net(2)
    method.set_progress(0.5)  # a quarter of the way: the reversal's weight is 0.125
    method.step(model, x, y, domain=d).loss.backward()
    layer_grad = model.layer.weight.grad.clone()
    model.zero_grad()
    spikes = model.layer(x)
    task = LOSSES.get("cross_entropy")(model.readout(spikes), y)
    adv = F.cross_entropy(model.domain_head(spikes.mean(0)), d)
    expected = torch.autograd.grad(task, model.layer.weight, retain_graph=True)[0] - 0.125 * torch.autograd.grad(adv, model.layer.weight)[0]
    assert torch.allclose(layer_grad, expected, atol=1e-6)
    with pytest.raises(ValueError, match="set dataset.domains"):
        method.step(model, x, y)
    with pytest.raises(ValueError, match="set model.domain_classes"):
        method.step(Net(None), x, y, domain=d)
    with pytest.raises(ValueError, match="domain label 2 but model.domain_classes is 2"):
        method.step(model, x, y, domain=torch.tensor([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="domain_adversary is the gradient reversal's weight"):
        METHODS.get("surrogate_bptt")(domain_adversary=-1)


def test_kws_net_domain_head_reads_the_last_conv_layers_bands_and_leaves_forward_alone():
    torch.manual_seed(0)
    plain = MODELS.get("kws_dilated")(bands=8, channels=[4, 4], kernels=[[2, 3], [2, 3]], dilations=[[1, 1], [2, 1]], band_pools=[2, 1])
    torch.manual_seed(0)
    adv = MODELS.get("kws_dilated")(bands=8, channels=[4, 4], kernels=[[2, 3], [2, 3]], dilations=[[1, 1], [2, 1]], band_pools=[2, 1],
                                   domain_classes=3)
    assert adv.domain_head.hidden.in_features == 4 * 4 and adv.domain_head.domains == 3  # 8 bands pooled by 2 before the last layer
    adv.load_state_dict({**adv.state_dict(), **plain.state_dict()})
    x = (torch.rand(6, 2, 1, 8) < 0.5).float()
    assert torch.equal(adv(x), plain(x))
    with pytest.raises(ValueError, match="at least 2 domains"):
        MODELS.get("kws_dilated")(bands=8, channels=[4], kernels=[[2, 3]], dilations=[[1, 1]], domain_classes=1)


def test_training_run_with_the_domain_adversary_logs_the_domain_classifier(corpus, tmp_path):  # noqa: F811
    adversarial = {"domains": "engine"}
    recipe = tiny_kws_recipe(tmp_path / "tiny.yaml", {"root": str(corpus), **adversarial}, name="dann_tiny")
    sets = ["--set", "method.domain_adversary=0.3", "--set", "model.domain_classes=3"]
    exportable = ["--set", "model.reset=zero"]  # NIR has no subtractive reset
    run = train_run(recipe, tmp_path / "runs", *sets, *exportable)
    rows = read_history(run)
    trained = [r for r in rows if r["epoch"] > 0]
    assert trained and all(0.0 <= r["train_domain_accuracy"] <= 1.0 and r["train_domain_loss"] > 0 for r in trained)
    assert main(["eval", str(run), "--data", str(corpus), "--split", "all"]) == 0
    assert main(["export", str(run)]) == 0  # the classifier is not part of the exported network
    nodes = nir.read(run / "model.nir").nodes
    assert {k.split(".")[0] for k in nodes} == {*map(str, range(8)), "input", "output"}  # 3 × (synapse, LIF), flatten, readout
    # labels without an adversary, or an adversary without labels: one line naming the keys
    assert main(["train", str(recipe), "--out", str(tmp_path / "bad")]) == 2
    plain = tiny_kws_recipe(tmp_path / "plain.yaml", {"root": str(corpus)}, name="plain_tiny")
    assert main(["train", str(plain), "--out", str(tmp_path / "bad"), *sets]) == 2
