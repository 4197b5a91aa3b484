"""Every registered name and the module that registers it, as a static table (a test keeps it equal to the registries).

`spikeforge list` prints these names without importing torch, and a registry imports only the module of
the name it is asked for (so `train default` does not load the speech or event datasets).
"""

from __future__ import annotations

#: registry kind → name → module (in the registry's package) whose import registers it
MODULES: dict[str, dict[str, str]] = {
    "model": {
        "demo_lif": "demo",
        **{name: "hybrid" for name in ("hybrid_fc2", "hybrid_c2f3", "hybrid_cifar_cnn", "hybrid_kws",
                                       "hybrid_fc2_snn", "hybrid_c2f3_snn", "hybrid_cifar_cnn_snn")},
        **{name: "kws" for name in ("kws_dilated", "kws_cnn", "kws_frozen", "kws_large_kernels", "kws_nlif", "kws_no_dilation")},
        **{name: "noise_nets" for name in ("noise_cnn", "noise_vgg16", "noise_resnet18")},
        "shorthand": "shorthand",
    },
    "dataset": {
        "cifar10": "cifar",
        **{name: "events" for name in ("nmnist", "dvs_gesture", "ntidigits18")},
        "fashion_mnist": "idx",
        "speech_commands": "speech_commands",
    },
    "method": {
        "hybrid_ann": "hybrid_temporal",
        "stdbp": "hybrid_temporal",
        "noise_single_step": "noise_single_step",
        "noise_direct_bptt": "noise_single_step",
        "surrogate_bptt": "surrogate_bptt",
    },
    "transition": {"one_spike_conversion": "one_spike_conversion"},
    "loss": {
        "cross_entropy": "classification",
        "mse": "classification",
        "spike_rate": "spike_rate",
        **{name: "spikemax" for name in ("spikemax", "spikemax_g", "spikemax_s")},
    },
}

#: the encoder names of spikeforge.train.encode.encoders()
ENCODERS = ("direct", "rate", "sequence", "ttfs", "ttfs_raster")
