"""The auxiliary phone loss: the lexicon, the dataset's phone labels, CTC by hand, the method's loss, a training run."""

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from spikeforge.cli import main
from spikeforge.data.lexicon import LEXICON, MAX_PHONES, PHONES, phone_targets
from spikeforge.layers import Readout, SpikingLinear
from spikeforge.losses.phones import phone_ctc_loss
from spikeforge.registry import DATASETS, LOSSES, METHODS, MODELS
from spikeforge.train.runfolder import read_history
from test_harness_tiny import tiny_kws_recipe, train_run
from test_speech_loeo import corpus  # noqa: F401  (the three-engine corpus fixture)


def test_lexicon_covers_speech_commands_v2_with_cmudict_phones():
    assert len(LEXICON) == 35 and len(PHONES) == 39
    assert phone_targets("off") == [PHONES.index("AO"), PHONES.index("F")] + [-1] * (MAX_PHONES - 2)
    assert phone_targets("four")[:3] == [PHONES.index(p) for p in ("F", "AO", "R")]  # shares AO and F with `off`
    assert phone_targets(None) == [-1] * MAX_PHONES  # silence: no phones
    assert MAX_PHONES == 6  # marvin, backward, forward, visual
    with pytest.raises(ValueError, match="no pronunciation for the word 'sheep'.*LEXICON"):
        phone_targets("sheep")


def test_ctc_by_hand_two_steps_one_phone():
    # T = 2, one phone `a` and the blank: the paths a a, a ∅, ∅ a; −log of their summed probability
    scores = torch.tensor([[[1.0, 0.0]], [[0.2, 0.5]]])  # [T, B, phone + blank]
    p = scores.softmax(-1)[:, 0]
    by_hand = -math.log(float(p[0, 0] * p[1, 0] + p[0, 0] * p[1, 1] + p[0, 1] * p[1, 0]))
    assert float(phone_ctc_loss(scores, torch.tensor([[0, -1]]))) == pytest.approx(by_hand, rel=1e-6)
    # two phones a a need a blank between them: T = 3 has the one path a ∅ a, divided by the 2 phones
    scores3 = torch.tensor([[[0.3, 0.1]], [[0.0, 0.4]], [[0.6, -0.2]]])
    q = scores3.softmax(-1)[:, 0]
    assert float(phone_ctc_loss(scores3, torch.tensor([[0, 0]]))) == pytest.approx(-math.log(float(q[0, 0] * q[1, 1] * q[2, 0])) / 2, rel=1e-6)
    # silence: only blanks, −Σ_t log p_t(∅)
    assert float(phone_ctc_loss(scores, torch.tensor([[-1, -1]]))) == pytest.approx(-math.log(float(p[0, 1] * p[1, 1])), rel=1e-6)
    with pytest.raises(ValueError, match="phone index 1 but the phone head has 1 phones and a blank"):
        phone_ctc_loss(scores, torch.tensor([[1, -1]]))


def test_dataset_gives_each_training_clip_its_words_phones(corpus):  # noqa: F811
    load = DATASETS.get("speech_commands")
    train = load(root=corpus, split="train", cache=False, silence=2, phones=True, domains="engine")
    for i, source in enumerate(train.sources):
        x, y, labels = train[i]
        assert set(labels) == {"domain", "phones"}
        assert labels["phones"].tolist() == phone_targets(None if source is None else Path(source).parent.name)
    assert len(load(root=corpus, split="test", cache=False, silence=0, phones=True)[0]) == 2  # only training clips carry them


class Net(nn.Module):
    """A spiking layer and a readout, with a phone readout on the layer's spikes (as KWSNet's `phone_classes`)."""

    output_reduction = "mean"

    def __init__(self, phones: int | None) -> None:
        super().__init__()
        self.layer, self.readout = SpikingLinear(5, 6, threshold_init=0.05), Readout(6, 3)
        self.phone_head = nn.Linear(6, phones) if phones else None

    def forward(self, x):
        return self.readout(self.layer(x))


def test_method_adds_lambda_times_the_ctc_of_the_phone_head_on_the_last_layers_spikes():
    torch.manual_seed(0)
    model = Net(4)
    x, y = torch.rand(9, 3, 5), torch.tensor([0, 2, 1])
    phones = torch.tensor([[0, 2, -1], [1, -1, -1], [-1, -1, -1]])
    method = METHODS.get("surrogate_bptt")(phone_ctc=0.3)
    out = method.step(model, x, y, phones=phones)
    spikes = model.layer(x)
    task = LOSSES.get("cross_entropy")(model.readout(spikes), y)
    ctc = phone_ctc_loss(model.phone_head(spikes), phones).detach()
    assert float(ctc) > 0
    assert float(out.loss.detach()) == pytest.approx(float(task.detach() + 0.3 * ctc), rel=1e-6)
    assert out.extras["phone_loss"] == pytest.approx(float(ctc), rel=1e-6)
    out.loss.backward()
    assert model.layer.weight.grad.abs().sum() > 0 and model.phone_head.weight.grad.abs().sum() > 0
    model.eval()  # validation and test: the task loss only, no phones needed
    assert float(method.step(model, x, y).loss.detach()) == pytest.approx(float(LOSSES.get("cross_entropy")(model(x), y).detach()), rel=1e-6)
    model.train()
    with pytest.raises(ValueError, match="set dataset.phones"):
        method.step(model, x, y)
    with pytest.raises(ValueError, match="set model.phone_classes"):
        method.step(Net(None), x, y, phones=phones)
    with pytest.raises(ValueError, match="phone_ctc is the weight"):
        METHODS.get("surrogate_bptt")(phone_ctc=-1)
    with pytest.raises(ValueError, match="mixup mixes two words"):
        METHODS.get("surrogate_bptt")(phone_ctc=0.3, mixup=0.2)


def test_kws_net_phone_head_reads_the_last_conv_layers_bands_and_leaves_forward_alone():
    shape = {"bands": 8, "channels": [4, 4], "kernels": [[2, 3], [2, 3]], "dilations": [[1, 1], [2, 1]], "band_pools": [2, 1]}
    torch.manual_seed(0)
    plain = MODELS.get("kws_dilated")(**shape)
    torch.manual_seed(0)
    with_phones = MODELS.get("kws_dilated")(**shape, phone_classes=40)
    assert (with_phones.phone_head.in_features, with_phones.phone_head.out_features) == (4 * 4, 40)
    with_phones.load_state_dict({**with_phones.state_dict(), **plain.state_dict()})
    x = (torch.rand(6, 2, 1, 8) < 0.5).float()
    assert torch.equal(with_phones(x), plain(x))
    with pytest.raises(ValueError, match="phone_classes is the number of phones"):
        MODELS.get("kws_dilated")(**shape, phone_classes=-1)


def test_training_run_with_the_phone_loss_logs_it_and_evaluates(corpus, tmp_path):  # noqa: F811
    recipe = tiny_kws_recipe(tmp_path / "tiny.yaml", {"root": str(corpus), "phones": True}, name="phones_tiny")
    sets = ["--set", "method.phone_ctc=0.3", "--set", "model.phone_classes=40"]
    run = train_run(recipe, tmp_path / "runs", *sets)
    trained = [r for r in read_history(run) if r["epoch"] > 0]
    assert trained and all(r["train_phone_loss"] > 0 for r in trained)
    assert main(["eval", str(run), "--data", str(corpus), "--split", "all"]) == 0
    # validation carved from the training split: its clips keep their phones, which evaluation does not use
    carved = tiny_kws_recipe(tmp_path / "carved.yaml", {"root": str(corpus), "phones": True, "val_fraction": 0.25}, name="carved_tiny", epochs=1)
    assert main(["train", str(carved), "--out", str(tmp_path / "carved"), "--no-progress", *sets]) == 0
    assert main(["train", str(carved), "--out", str(tmp_path / "bad")]) == 2  # the check sees through the carving
    # phones without the loss, or the loss without phones: one line naming the keys
    assert main(["train", str(recipe), "--out", str(tmp_path / "bad")]) == 2
    plain = tiny_kws_recipe(tmp_path / "plain.yaml", {"root": str(corpus)}, name="plain_tiny")
    assert main(["train", str(plain), "--out", str(tmp_path / "bad"), *sets]) == 2
