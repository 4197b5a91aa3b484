"""Leave-one-engine-out: the engine filters of the speech dataset, `eval --engine/--split all`, and `spikeforge loeo`."""

import csv
import json
import re

import numpy as np
import pytest
import soundfile as sf
import yaml

from spikeforge.cli import main
from spikeforge.data.speech_commands import CLASSES, SILENCE, speaker_of
from spikeforge.registry import DATASETS
from spikeforge.train.loeo import loeo_table
from test_harness_tiny import cli_in_subprocess, percent, tiny_kws_recipe

SR = 16000
ENGINES = {"alpha": 250.0, "beta": 600.0, "gamma": 1400.0}  # each engine's "voice": a base pitch of its chirps


def _speaker(engine: str, k: int) -> str:
    return f"{list(ENGINES).index(engine):02x}{k:06x}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """yes / no / bed as tone chirps by 4 speakers of each of three engines (1 validation, 1 test, 2 training each)."""
    root = tmp_path_factory.mktemp("loeo") / "corpus"
    rng = np.random.default_rng(0)
    t = np.arange(SR // 2) / SR
    val, test, rows = [], [], []
    for engine, base in ENGINES.items():
        for k in range(4):
            spk = _speaker(engine, k)
            rows.append([spk, engine])
            for word, factor in (("yes", 1.0), ("no", 2.0), ("bed", 3.5)):
                (root / word).mkdir(parents=True, exist_ok=True)
                f0 = base * factor * rng.uniform(0.97, 1.03)
                wave = 0.5 * np.sin(2 * np.pi * f0 * t * (1 + 0.3 * t)) * np.hanning(len(t))
                sf.write(root / word / f"{spk}_nohash_0.wav", wave.astype(np.float32), SR, subtype="PCM_16")
                (val if k == 0 else test if k == 1 else []).append(f"{word}/{spk}_nohash_0.wav")
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "white_noise.wav", (0.05 * rng.standard_normal(5 * SR)).astype(np.float32), SR)
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    with open(root / "speakers.csv", "w", newline="") as f:
        csv.writer(f).writerows([["speaker", "engine"], *rows])
    return root


def _engine(source):
    return None if source is None else list(ENGINES)[int(speaker_of(source)[:2], 16)]


def test_exclude_engines_and_engines_select_speakers_in_every_split(corpus):
    load = DATASETS.get("speech_commands")
    for split, per_engine in (("train", 2), ("val", 1), ("test", 1), ("all", 4)):
        every = load(root=corpus, split=split, cache=False, silence=0)
        assert len(every) == 3 * 3 * per_engine
        left = load(root=corpus, split=split, cache=False, silence=0, exclude_engines=["beta"])
        assert sorted({_engine(s) for s in left.sources}) == ["alpha", "gamma"] and len(left) == 2 * 3 * per_engine
        only = load(root=corpus, split=split, cache=False, silence=0, engines=["beta"])
        assert {_engine(s) for s in only.sources} == {"beta"} and len(only) == 3 * per_engine
    with pytest.raises(ValueError, match=r"exclude_engines names 'flite', not an engine of .*known: alpha, beta, gamma"):
        load(root=corpus, cache=False, exclude_engines=["flite"])
    with pytest.raises(ValueError, match="leave at least one engine in"):
        load(root=corpus, cache=False, exclude_engines=list(ENGINES))


def test_engine_filters_need_a_speaker_table(corpus, tmp_path):
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(corpus, bare)
    (bare / "speakers.csv").unlink()
    assert len(DATASETS.get("speech_commands")(root=bare, cache=False, silence=0)) == 18
    with pytest.raises(ValueError, match="has no speakers.csv; engines and exclude_engines need one"):
        DATASETS.get("speech_commands")(root=bare, cache=False, engines=["alpha"])
    assert main(["loeo", "kws_fast", "--data", str(bare), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def _files(folder) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_training_caches_features_beside_its_runs_and_eval_writes_nothing(corpus, tmp_path, capsys):
    home, out = tmp_path / "home", tmp_path / "work" / "runs"
    home.mkdir()
    recipe = tiny_kws_recipe(tmp_path / "tiny.yaml", {"root": str(corpus)}, epochs=1)
    done = cli_in_subprocess(["train", str(recipe), "--out", str(out)], HOME=str(home), MPLCONFIGDIR=str(tmp_path / "mpl"))
    assert done.returncode == 0, done.stderr
    assert _files(home) == {}  # nothing in the user's home: the cache lies under --out
    assert len(list((out / "features").glob("*.safetensors"))) == 3  # train, val, test
    (run,) = [p for p in out.iterdir() if p.name != "features"]
    before = _files(tmp_path)
    assert main(["eval", str(run)]) == 0
    assert _files(tmp_path) == before  # eval computes the features it reads and writes no file
    accuracy = json.loads((run / "metrics.json").read_text())["accuracy"]
    assert percent(capsys.readouterr().out, "accuracy") == pytest.approx(100 * accuracy, abs=0.01)  # the cached features, recomputed


def test_loeo_trains_without_each_engine_and_its_table_equals_eval(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    recipe = tiny_kws_recipe(tmp_path / "tiny.yaml", {"root": str(tmp_path / "elsewhere"), "time_shift_steps": 2}, name="loeo_tiny")  # the recipe's own root is replaced by --data
    assert main(["loeo", str(recipe), "--data", str(corpus), "--out", str(out), "--engines", "gamma,alpha"]) == 0
    printed = capsys.readouterr().out
    table = (out / "loeo.md").read_text()
    assert table.split("\n\n", 1)[1] in printed
    runs = sorted(p for p in out.iterdir() if p.is_dir() and p.name != "features")
    assert [p.name.rsplit("-", 2)[0] for p in runs] == ["loeo_tiny-without-alpha", "loeo_tiny-without-gamma"]
    assert sorted(p.name for p in out.iterdir() if not p.is_dir()) == ["loeo.md"] and any((out / "features").iterdir())
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in table.splitlines()[4:]}
    assert list(rows) == ["gamma", "alpha", "mean"]
    for run in runs:
        left_out = run.name.split("-without-")[1].split("-")[0]
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["dataset"]["exclude_engines"] == [left_out] and config["dataset"]["root"] == str(corpus)
        train = DATASETS.get("speech_commands")(root=corpus, split="train", cache=False, silence=0, exclude_engines=[left_out])
        assert left_out not in {_engine(s) for s in train.sources}
        capsys.readouterr()
        assert main(["eval", str(run), "--data", str(corpus), "--split", "all", "--engine", left_out]) == 0
        shown = capsys.readouterr().out
        # TF mix of the left-out engine: its 8 keyword clips, ceil(0.8) = 1 unknown, 1 silence
        assert f"on the all split of {corpus}, engine {left_out}, 10 samples" in shown
        own, _, tf_acc, balanced, keyword, clips, _ = rows[left_out]
        assert float(tf_acc.rstrip(" %")) == pytest.approx(percent(shown, "accuracy"), abs=0.01)
        assert float(balanced.rstrip(" %")) == pytest.approx(percent(shown, "balanced accuracy"), abs=0.01)
        assert float(keyword.rstrip(" %")) == pytest.approx(percent(shown, "keyword recall"), abs=0.01)
        assert clips == "10" and re.search(rf"^  {left_out}\s+[0-9.]+% \(9 clips\)", shown, re.M)
        assert re.search(rf"^  {SILENCE}\s+[0-9.]+% \(1 clips\)", shown, re.M) and len(CLASSES) == 12
    mean = rows["mean"]
    for column in (0, 2, 3, 4):
        values = [float(rows[e][column].rstrip(" %")) for e in ("gamma", "alpha")]
        assert float(mean[column].rstrip(" %")) == pytest.approx(sum(values) / 2, abs=0.01)


def test_loeo_rejects_unknown_engines_and_non_speech_recipes(corpus, tmp_path, capsys):
    assert main(["loeo", "kws_fast", "--data", str(corpus), "--out", str(tmp_path / "o"), "--engines", "flite"]) == 2
    assert "--engines names 'flite'" in capsys.readouterr().err
    assert main(["loeo", "noise_mnist", "--data", str(corpus), "--out", str(tmp_path / "o")]) == 2
    assert "needs a speech_commands recipe" in capsys.readouterr().err
    assert main(["loeo", "kws_fast", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "nowhere does not exist; give --data a Speech Commands folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_loeo_table_means():
    row = lambda e, own, acc, kw: {"engine": e, "own_test": own, "own_spike_rates": {"l1": 0.05},  # noqa: E731
                                   "heldout": {"accuracy": acc, "balanced_accuracy": acc, "keyword_recall": kw, "samples": 12, "spike_rates": {"l1": 0.1}}}
    text = loeo_table([row("a", 0.9, 0.5, 0.4), row("b", 0.8, 0.7, 0.8)])
    assert "| a | 90.00 % | 5.0 | 50.00 % | 50.00 % | 40.00 % | 12 | 10.0 |" in text
    assert "| mean | 85.00 % | | 60.00 % | 60.00 % | 60.00 % | | |" in text
