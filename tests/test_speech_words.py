"""A readout row per word of `_unknown_`: the collapse by hand, the step path, the dataset's rows, the method's loss, a run."""

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from spikeforge.cli import main
from spikeforge.data.speech_commands import CLASSES, word_row
from spikeforge.export.nir_graph import to_nir
from spikeforge.layers import Readout, SpikingLinear, WordReadout
from spikeforge.registry import DATASETS, LOSSES, METHODS, MODELS
from spikeforge.train.runfolder import read_history
from test_harness_tiny import tiny_kws_recipe, train_run
from test_speech_loeo import corpus  # noqa: F401  (the three-engine corpus fixture)


def test_word_readout_group_score_is_the_log_sum_exp_of_its_words_by_hand():
    readout = WordReadout(2, classes=3, group=1, words=3)  # rows: class 0, class 2, then the group's three words
    with torch.no_grad():
        readout.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0], [0.0, 0.0]]))
        readout.bias.copy_(torch.tensor([0.0, 0.5, 0.0, 0.0, -1.0]))
    x = torch.tensor([[[1.0, 2.0]]])  # [T=1, B=1, 2]
    assert readout.words(x)[0, 0].tolist() == [1.0, 2.5, 3.0, 2.0, -1.0]
    group = math.log(math.exp(3.0) + math.exp(2.0) + math.exp(-1.0))
    assert readout(x)[0, 0].tolist() == pytest.approx([1.0, group, 2.5], rel=1e-6)
    with pytest.raises(ValueError, match="group must be a class index"):
        WordReadout(2, classes=3, group=3, words=2)


def test_kws_net_with_word_rows_steps_as_it_runs_and_keeps_twelve_classes():
    shape = {"bands": 8, "channels": [4, 4], "kernels": [[2, 3], [2, 3]], "dilations": [[1, 1], [2, 1]], "readout_leak": 0.8}
    torch.manual_seed(0)
    model = MODELS.get("kws_dilated")(**shape, unknown_words=20).eval()
    assert model.readout.weight.shape[0] == 31
    x = (torch.rand(7, 2, 1, 8) < 0.4).float()
    whole = model(x)
    assert whole.shape == (7, 2, 12)
    state, steps = model.init_state(2), []
    for t in range(7):
        out, state = model.step(x[t], state)
        steps.append(out)
    torch.testing.assert_close(torch.stack(steps), whole)
    with pytest.raises(ValueError, match="unknown_words is the number of words"):
        MODELS.get("kws_dilated")(**shape, unknown_words=-1)


def test_word_rows_of_the_speech_commands_classes():
    unknown = ["bed", "bird", "cat"]
    assert CLASSES[:3] == ("_silence_", "_unknown_", "down")
    assert word_row(None, unknown) == 0  # silence
    assert word_row("down", unknown) == 1  # the classes after `_unknown_` move up one row
    assert word_row("yes", unknown) == 10
    assert [word_row(w, unknown) for w in unknown] == [11, 12, 13]


def test_dataset_gives_each_training_clip_its_words_row(corpus):  # noqa: F811
    load = DATASETS.get("speech_commands")
    train = load(root=corpus, split="train", cache=False, silence=2, words=True)
    rows = set()
    for i, source in enumerate(train.sources):
        _, y, labels = train[i]
        word = None if source is None else Path(source).parent.name
        assert labels == {"word": word_row(word, train.unknown_words)}
        rows.add(labels["word"])
    assert train.unknown_words and all(w not in CLASSES for w in train.unknown_words)
    assert max(rows) >= len(CLASSES) - 1  # some clips of `_unknown_` words
    assert len(load(root=corpus, split="test", cache=False, silence=0, words=True)[0]) == 2  # only training clips carry them


class Net(nn.Module):
    """A spiking layer and a readout with word rows for class 1 (as KWSNet's `unknown_words`)."""

    output_reduction = "mean"

    def __init__(self, words: int) -> None:
        super().__init__()
        self.layer = SpikingLinear(5, 6, threshold_init=0.05)
        self.readout = WordReadout(6, 3, group=1, words=words) if words else Readout(6, 3)

    def forward(self, x):
        return self.readout(self.layer(x))


def test_method_adds_lambda_times_the_cross_entropy_of_the_word_rows():
    torch.manual_seed(0)
    model = Net(4)
    x, y, word = torch.rand(9, 3, 5), torch.tensor([0, 1, 1]), torch.tensor([0, 3, 5])
    method = METHODS.get("surrogate_bptt")(word_loss=0.4)
    out = method.step(model, x, y, word=word)
    spikes = model.layer(x)
    task = LOSSES.get("cross_entropy")(model.readout(spikes), y)
    words = nn.functional.cross_entropy(model.readout.words(spikes).mean(0), word).detach()
    assert float(words) > 0
    assert float(out.loss.detach()) == pytest.approx(float(task.detach() + 0.4 * words), rel=1e-6)
    assert out.extras["word_loss"] == pytest.approx(float(words), rel=1e-6)
    out.loss.backward()
    assert model.layer.weight.grad.abs().sum() > 0 and model.readout.weight.grad[2:].abs().sum() > 0
    assert not model.readout._forward_hooks  # the hook that reads the readout's input is gone
    model.eval()  # validation and test: the task loss only, no words needed
    assert float(method.step(model, x, y).loss.detach()) == pytest.approx(float(LOSSES.get("cross_entropy")(model(x), y).detach()), rel=1e-6)
    model.train()
    with pytest.raises(ValueError, match="set dataset.words"):
        method.step(model, x, y)
    with pytest.raises(ValueError, match="set model.unknown_words"):
        method.step(Net(0), x, y, word=word)
    with pytest.raises(ValueError, match="word row 6 but the readout has 6 rows"):
        method.step(model, x, y, word=torch.tensor([0, 3, 6]))
    with pytest.raises(ValueError, match="word_loss is the weight"):
        METHODS.get("surrogate_bptt")(word_loss=-1)
    with pytest.raises(ValueError, match="mixup mixes two words"):
        METHODS.get("surrogate_bptt")(word_loss=0.3, mixup=0.2)


def test_nir_export_refuses_the_word_readout_by_name():
    model = MODELS.get("kws_dilated")(bands=8, channels=[4], kernels=[[2, 3]], dilations=[[1, 1]], unknown_words=3, reset="zero")
    with pytest.raises(ValueError, match="layer 'readout' \\(WordReadout\\) cannot be exported to NIR: its `_unknown_` score"):
        to_nir(model, (1, 8), dt=1e-3)


def test_training_run_with_word_rows_logs_the_loss_and_evaluates(corpus, tmp_path):  # noqa: F811
    recipe = tiny_kws_recipe(tmp_path / "tiny.yaml", {"root": str(corpus), "words": True}, name="words_tiny")
    sets = ["--set", "method.word_loss=1.0", "--set", "model.unknown_words=20"]
    run = train_run(recipe, tmp_path / "runs", *sets)
    trained = [r for r in read_history(run) if r["epoch"] > 0]
    assert trained and all(r["train_word_loss"] > 0 for r in trained)
    assert main(["eval", str(run), "--data", str(corpus), "--split", "all"]) == 0
    # words without the loss: one line naming the keys
    assert main(["train", str(recipe), "--out", str(tmp_path / "bad")]) == 2
