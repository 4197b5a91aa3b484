"""The benchmark harness sets and reports the activity of the spiking layers (benchmarks/bench_models.py, run.py)."""

import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import bench_models  # noqa: E402


@pytest.mark.parametrize("model,rate", [("A", 0.2), ("B", 0.1)])
def test_calibrated_gains_make_every_layer_fire_at_the_target_rate(model, rate):
    x, _ = bench_models.make_batch(model, 20, 4, torch.Generator().manual_seed(1))
    gains = bench_models.calibrate_gains(model, x, rate)
    torch.manual_seed(0)
    rates = bench_models.layer_rates(bench_models.build(model, "spikeforge-fused", gains=gains), x)
    assert len(rates) == 3 and rates == pytest.approx([rate] * 3, abs=0.01)
    torch.manual_seed(0)
    default = bench_models.layer_rates(bench_models.build(model, "spikeforge-fused"), x)
    assert max(abs(r - rate) for r in default) > 0.05, "the target must differ from what the default init gives"
    assert bench_models.layer_rates(bench_models.build(model, "floor", gains=gains), x) == []


def test_run_refuses_a_missing_cuda_device_and_a_bad_activity():
    import run

    run.check_args("cpu", [2, 5, 30])
    with pytest.raises(SystemExit, match="percent, between 0 and 100"):
        run.check_args("cpu", [150])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="no CUDA device"):
            run.check_args("cuda", None)


@pytest.mark.parametrize("model", ["A", "B"])
def test_spikeforge_fixes_beta_and_threshold_as_the_peers_unless_learned(model):
    # the peers' neurons have constant β and threshold: `spikeforge-fused` must train only what the floor (the same
    # synapses without neurons) has, as they do; `spikeforge-learned` (the layers' default) learns β and the threshold
    # too, with the same spikes
    x, _ = bench_models.make_batch(model, 20, 4, torch.Generator().manual_seed(1))
    nets = {}
    for impl in ("spikeforge-fused", "spikeforge-learned", "floor"):
        torch.manual_seed(0)
        nets[impl] = bench_models.build(model, impl)
    names = {impl: {n.rsplit(".", 1)[-1] for n, _ in net.named_parameters()} for impl, net in nets.items()}
    assert names["spikeforge-fused"] == names["floor"] == {"weight"} | ({"bias"} if model == "A" else set())
    assert {"beta", "threshold"} <= names["spikeforge-learned"]
    with torch.no_grad():
        assert torch.equal(nets["spikeforge-fused"](x), nets["spikeforge-learned"](x))
