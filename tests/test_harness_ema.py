"""`ema_decay`: validation, test and checkpoints use an exponential moving average of the trained weights; resume is exact."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from spikeforge.train import checkpoint
from spikeforge.train.config import RecipeError, load_recipe
from spikeforge.train.evaluate import evaluate
from spikeforge.train.trainer import Trainer, TrainingInterrupted
import test_harness_train  # noqa: F401  (registers the model test_sigint_at_3)
from test_harness_tiny import FMNIST, tiny_recipe

pytestmark = pytest.mark.skipif(not FMNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist")
DECAY = 0.75


def _trainer(tmp_path, run, *overrides, resume=None):
    config = load_recipe(str(tiny_recipe(tmp_path, checkpoint_every=0)), [f"ema_decay={DECAY}", *overrides])
    if run is not None:
        run.mkdir(exist_ok=True)
    return Trainer(config, run, resume=resume, log=lambda _: None, progress_bar=False)


def test_the_saved_weights_are_the_moving_average_of_the_trained_ones(tmp_path):
    trainer = _trainer(tmp_path, tmp_path / "run")
    trained, after_step = [], trainer.method.after_step
    trainer.method.after_step = lambda model: (after_step(model), trained.append({k: v.detach().clone() for k, v in model.state_dict().items()}))
    trainer.fit()
    assert len(trained) == trainer.state.step == 12
    expected = dict(trained[0])  # the first update copies the weights
    for weights in trained[1:]:
        expected = {k: DECAY * expected[k] + (1 - DECAY) * weights[k] for k in expected}  # W_ema ← d·W_ema + (1 − d)·W
    last = trainer.run / "checkpoints" / "last"
    saved = load_file(last / "weights.safetensors")
    state = checkpoint.load_state(last)
    for key, value in expected.items():
        assert torch.allclose(saved[key], value, atol=1e-6), key
        assert torch.equal(state["trained_weights"][key], trained[-1][key]), key
        assert not torch.equal(saved[key], trained[-1][key]), key  # the average is not the last trained weights
    assert state["ema_averaged"] == 12
    val = trainer.state.history[-1]["val_acc"]
    averaged = trainer._new_model()
    averaged.load_state_dict(saved)
    assert evaluate(averaged, trainer.method, trainer.val_set, trainer.config["encoder"], 128, trainer.ctx).accuracy == val


def test_interrupted_then_resumed_gives_the_weights_and_average_of_an_uninterrupted_run(tmp_path):
    _trainer(tmp_path, tmp_path / "a").fit()
    interrupted = _trainer(tmp_path, tmp_path / "b", "model={name: test_sigint_at_3}")
    with pytest.raises(TrainingInterrupted):
        interrupted.fit()
    last = tmp_path / "b" / "checkpoints" / "last"
    assert checkpoint.load_state(last)["step"] == 3
    _trainer(tmp_path, tmp_path / "b", "model={name: demo_lif, hidden: [16]}", resume=last).fit()
    (average_a, trained_a), (average_b, trained_b) = (
        (load_file(last / "weights.safetensors"), checkpoint.load_state(last)["trained_weights"])
        for last in (tmp_path / run / "checkpoints" / "last" for run in "ab"))
    assert average_a.keys() == average_b.keys() == trained_a.keys() == trained_b.keys()
    for key in average_a:
        assert torch.allclose(average_a[key], average_b[key], atol=1e-6), key
        assert torch.allclose(trained_a[key], trained_b[key], atol=1e-6), key


def test_resuming_a_run_without_an_average_with_one_is_a_clear_error(tmp_path):
    config = load_recipe(str(tiny_recipe(tmp_path, checkpoint_every=0)), ["epochs=1"])
    (tmp_path / "run").mkdir()
    Trainer(config, tmp_path / "run", log=lambda _: None, progress_bar=False).fit()
    with pytest.raises(ValueError, match="written without ema_decay; resume it with ema_decay: null"):
        _trainer(tmp_path, None, resume=tmp_path / "run" / "checkpoints" / "last")


def test_a_decay_of_one_is_rejected(tmp_path):
    with pytest.raises(RecipeError, match=r"ema_decay: must be < 1.0, got 1.0"):
        load_recipe(str(tiny_recipe(tmp_path)), ["ema_decay=1.0"])
