"""`spikeforge ablate` and `spikeforge predict` end to end on a tiny generated Speech Commands set."""

import json
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf
import yaml

import spikeforge
from spikeforge.cli import main, one_line_warnings
from spikeforge.train.ablation import VARIANTS, variant_config
from spikeforge.data.speech_commands import CLASSES
from spikeforge.data.speech_generate import generate
from spikeforge.train.config import validate

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")


def tiny_recipe(root) -> dict:
    return {
        "name": "kws_tiny", "seed": 0,
        "dataset": {"name": "speech_commands", "root": str(root), "cache": False},
        "encoder": {"name": "sequence"},
        "model": {"name": "kws_dilated", "channels": [2, 2, 2]},
        "method": {"name": "surrogate_bptt", "loss": "cross_entropy", "reg_weight": 0.1},
        "optimizer": {"name": "radam", "lr": 1.0e-3, "weight_decay": 1.0e-5},
        "schedule": {"name": "warmup_exp", "warmup_epochs": 1.0, "gamma": 0.85},
        "epochs": 1, "batch_size": 32, "grad_clip": 5.0, "sampler": "weighted",
    }  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A generated set (24 speakers, yes/no/bed) and one `ablate` call training the full model and the CNN."""
    base = tmp_path_factory.mktemp("kws")
    generate(base / "sc", speakers=24, per_word=1, unknown_per_word=1, words=("yes", "no", "bed"), noise_seconds=2.0)
    recipe = base / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(base / "sc")))
    argv = ["ablate", str(recipe), "--variants", "full,cnn", "--out", str(base / "runs"), "--set", "seed=1"]
    assert main(argv) == 0
    return base, base / "runs" / "ablation.md"  # the table's default place: under --out


def test_ablate_writes_a_table2_like_markdown_table(trained):
    base, table = trained
    lines = table.read_text().splitlines()
    assert "--set seed=1" in lines[0]
    assert lines[2].startswith("| model | params (M) | valid ER (%) | test ER (%) | % spikes per conv layer")
    rows = [l for l in lines if l.startswith("| ") and "---" not in l][1:]
    assert [r.split(" | ")[0][2:] for r in rows] == ["Full SNN model", "non-spiking CNN (§10)"]
    full = rows[0].split(" | ")
    assert len(full[4].split(" / ")) == 3 and rows[1].split(" | ")[4] == "–"
    runs = sorted(p.name.rsplit("-", 2)[0] for p in (base / "runs").iterdir() if p.is_dir())
    assert runs == ["kws_tiny-cnn", "kws_tiny-full"]
    metrics = json.loads(next((base / "runs").glob("kws_tiny-full-*/metrics.json")).read_text())
    assert f"{metrics['parameters'] / 1e6:.3f}" == full[1] and len(metrics["spike_rates"]) == 3


def test_predict_prints_the_class_and_writes_the_score_trace(trained, capsys, tmp_path):
    base, _ = trained
    run = next((base / "runs").glob("kws_tiny-full-*"))
    wav = next((base / "sc" / "yes").glob("*.wav"))
    png = tmp_path / "trace.png"
    assert main(["predict", str(run), str(wav), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    label = out.split(": ", 1)[1].split(" (")[0]
    prob = float(out.split("probability ")[1].split(")")[0])
    assert label in CLASSES and 1 / 12 <= prob <= 1.0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_resamples_a_stereo_44k_file_and_rejects_a_corrupt_one(trained, capsys, tmp_path):
    base, _ = trained
    run = next((base / "runs").glob("kws_tiny-full-*"))
    wave, _ = sf.read(next((base / "sc" / "no").glob("*.wav")), dtype="float32")
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.stack([np.interp(np.arange(44100) / 44100 * 16000, np.arange(16000), wave)] * 2, axis=1), 44100)
    with pytest.warns(UserWarning) as rec:
        assert main(["predict", str(run), str(stereo), "--png", str(tmp_path / "s.png")]) == 0
    text = " ".join(str(w.message) for w in rec)
    assert "downmixed to mono" in text and "resampled to 16000 Hz" in text
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    assert main(["predict", str(run), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not a readable WAV file" in err and err.count("\n") == 1
    assert main(["predict", str(run), str(tmp_path / "missing.wav")]) == 2
    err = capsys.readouterr().err
    assert "missing.wav: no such file" in err and err.count("\n") == 1


def test_the_command_prints_its_own_warnings_on_one_line(trained, tmp_path):
    base, _ = trained
    run = next((base / "runs").glob("kws_tiny-full-*"))
    wave, _ = sf.read(next((base / "sc" / "no").glob("*.wav")), dtype="float32")
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.stack([wave, wave], axis=1), 16000)
    done = subprocess.run([sys.executable, "-m", "spikeforge", "predict", str(run), str(stereo), "--png", str(tmp_path / "s.png")],
                          capture_output=True, text=True, check=True)
    assert done.stderr == f"spikeforge predict: warning: {stereo}: 2 channels, downmixed to mono\n"


def test_other_libraries_warnings_keep_their_origin():
    python_format = warnings.formatwarning
    ours = f"{spikeforge.__path__[0]}/commands/speech.py"
    with one_line_warnings("eval"):
        mine = warnings.formatwarning("a.wav: 2 channels", UserWarning, ours, 38, "clip = read_wav(path)")
        theirs = warnings.formatwarning("deprecated", FutureWarning, "/site-packages/torch/nn/x.py", 7, "old()")
    assert mine == "spikeforge eval: warning: a.wav: 2 channels\n"
    assert theirs == python_format("deprecated", FutureWarning, "/site-packages/torch/nn/x.py", 7, "old()")
    assert "torch/nn/x.py:7: FutureWarning" in theirs
    assert warnings.formatwarning is python_format


def test_variant_configs_change_only_what_table2_changes(tmp_path):
    base = tiny_recipe(tmp_path / "sc")
    base["model"]["lateral"] = True
    nlif = variant_config(validate(base), "nlif_no_reg")
    assert nlif["name"] == "kws_tiny-nlif_no_reg" and nlif["model"]["name"] == "kws_nlif"
    assert nlif["model"]["lateral"] is True and nlif["model"]["channels"] == [2, 2, 2] and nlif["method"]["reg_weight"] == 0.0
    cnn = variant_config(validate(base), "cnn")["model"]
    assert cnn["name"] == "kws_cnn" and cnn["channels"] == [2, 2, 2] and "lateral" not in cnn
    assert set(VARIANTS) == {"full", "no_dilation", "large_kernels", "no_reg", "nlif_reg", "nlif_no_reg", "frozen", "cnn"}
    with pytest.raises(ValueError, match="unknown ablation variant 'nlf'"):
        variant_config(validate(base), "nlf")
    with pytest.raises(ValueError, match="needs a recipe whose model is kws_dilated"):
        variant_config(validate({**base, "model": {"name": "kws_cnn"}}), "full")


def test_skipped_wavs_are_counted_in_the_run_report(tmp_path):
    generate(tmp_path / "sc", speakers=24, per_word=1, unknown_per_word=1, words=("yes", "no"), noise_seconds=2.0)
    (tmp_path / "sc" / "yes" / "ffffffff_nohash_0.wav").write_bytes(b"RIFF garbage")  # a train file (in no split list)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tmp_path / "sc")))
    with pytest.warns(UserWarning, match="skipped"):
        assert main(["train", str(recipe), "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    metrics = json.loads(next((tmp_path / "runs").glob("kws_tiny-*/metrics.json")).read_text())
    assert metrics["data_report"]["train"]["skipped"] == 1
    assert metrics["data_report"]["train"]["skipped_files"][0].endswith("ffffffff_nohash_0.wav")
    assert metrics["data_report"]["test"]["skipped"] == 0


def test_ablate_that_cannot_start_leaves_no_run_folder(tmp_path, capsys):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tmp_path / "no_such_folder")))
    out = tmp_path / "runs"
    assert main(["ablate", str(recipe), "--variants", "full", "--out", str(out / "ablation")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()  # neither the run folder nor the --out folders made for it
