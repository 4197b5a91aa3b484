"""`spikeforge spikemax`: spike-based losses trained with one seed on generated events; plots, table, latency."""

import json

from spikeforge.cli import main
from spikeforge.train.loss_comparison import loss_kwargs, time_to_fraction
from spikeforge.data.saccade import generate


def test_time_to_fraction_hand_worked():
    assert time_to_fraction([0.1, 0.5, 0.85, 0.95, 0.9]) == 3  # 0.9 · 0.9 = 0.81 first reached after 3 steps
    assert time_to_fraction([0.0, 0.0]) == 1


def test_loss_kwargs_keep_the_recipe_value_unless_an_option_is_given():
    recipe = {"window": 6, "eps": 0.3}
    none = {"true_rate": None, "false_rate": None, "window": None, "eps": None, "gradient": None}
    assert loss_kwargs("spikemax", recipe, none) == {"window": 6, "eps": 0.3}  # not the option's old default 30
    assert loss_kwargs("spikemax", recipe, {**none, "window": 30}) == {"window": 30, "eps": 0.3}
    assert loss_kwargs("spikemax_g", recipe, none) == {"eps": 0.3}  # spikemax_g has no window (eq. 11)
    assert loss_kwargs("spikemax_s", recipe, {**none, "gradient": "exact"}) == {"gradient": "exact"}
    assert loss_kwargs("spike_rate", recipe, {**none, "false_rate": 0.04}) == {"false_rate": 0.04}


def test_compare_losses_on_generated_events(tmp_path):
    generate(tmp_path / "events", train=24, test=8, seed=0)
    argv = ["spikemax", "spikemax_saccade", "--losses", "spike_rate", "spikemax_s", "--out", str(tmp_path / "runs"), "--no-progress",
            "--set", f"dataset.root={tmp_path / 'events'}", "--set", "dataset.steps=12", "--set", "epochs=1",
            "--set", "batch_size=8", "--set", "model.arch=34x34x2-4a-16-10"]
    assert main(argv) == 0
    folder = tmp_path / "runs" / "spikemax_saccade_compare"
    results = json.loads((folder / "results.json").read_text())
    assert list(results) == ["spike_rate", "spikemax_s"]
    assert results["spike_rate"]["loss_kwargs"] == {} and results["spikemax_s"]["loss_kwargs"] == {}
    for r in results.values():
        assert len(r["accuracy_vs_time"]) == 12 and 1 <= r["time_to_90"] <= 12
        assert list(r["spike_counts"]) == ["layers.0", "layers.1", "layers.2"]
    # the same seed and data: the input layer (fixed pooling weights) spikes identically for both losses
    assert len({r["spike_counts"]["layers.0"] for r in results.values()}) == 1
    assert (folder / "accuracy_vs_time.png").stat().st_size > 0 and (folder / "spike_counts.png").stat().st_size > 0
    table = (folder / "table.md").read_text()
    assert table.count("\n| spike") == 2 and "90 % of final at" in table
