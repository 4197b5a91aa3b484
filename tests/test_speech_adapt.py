"""Self-training on unlabelled clips: `spikeforge adapt` (spikeforge.train.adapt)."""

import csv
import os
import shutil
from pathlib import Path

import pytest
import yaml

from spikeforge.cli import main
from spikeforge.data.speech_commands import CLASSES, SILENCE, features_of, read_wav
from spikeforge.registry import DATASETS
from spikeforge.streaming.clip import classify_clip
from spikeforge.train.adapt import LABELS, PseudoLabel, most_confident
from spikeforge.train.loading import load_run
from test_harness_tiny import run_copy_with_dataset, tiny_kws_recipe
from test_speech_loeo import _engine, corpus  # noqa: F401 (a fixture)


def _label(path: str, cls: str, p: float) -> PseudoLabel:
    return PseudoLabel(Path(path), CLASSES.index(cls), p)


def test_most_confident_keeps_the_surest_share_in_file_order_without_silence():
    labels = [_label("a", "yes", 0.5), _label("b", SILENCE, 0.99), _label("c", "no", 0.9), _label("d", "go", 0.2), _label("e", "up", 0.7)]
    assert [x.path.name for x in most_confident(labels, 0.6)] == ["c", "e"]  # the three surest: b (silence, dropped), c, e
    assert [x.path.name for x in most_confident(labels, 0.8)] == ["a", "c", "e"]
    assert [x.path.name for x in most_confident(labels, 1.0)] == ["a", "c", "d", "e"]
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="--keep must be in \\(0, 1\\]"):
            most_confident(labels, bad)


def _engine_of(path: Path, root: Path) -> str | None:
    """The engine of a clip file under `root`; None for a background recording."""
    rel = path.relative_to(root).as_posix()
    return None if rel.startswith("_background_noise_/") else _engine(rel)


def _files(folder: Path) -> set:
    return {p for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


@pytest.fixture(scope="module")
def teacher(corpus, tmp_path_factory):  # noqa: F811
    """A one-epoch fold trained without the engine 'gamma'."""
    out = tmp_path_factory.mktemp("teacher")
    recipe = tiny_kws_recipe(out / "tiny.yaml", {"root": str(corpus)}, name="adapt_tiny", epochs=1)
    assert main(["loeo", str(recipe), "--data", str(corpus), "--out", str(out / "runs"), "--engines", "gamma"]) == 0
    (run,) = [p for p in (out / "runs").iterdir() if p.name.startswith("adapt_tiny-without-gamma")]
    return run


def test_adapt_trains_on_the_surest_pseudo_labels_of_the_engine_left_out(corpus, teacher, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "adapted"
    before = _files(tmp_path.parent) - _files(out)
    assert main(["adapt", str(teacher), "--data", str(corpus), "--engine", "gamma", "--keep", "0.5", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert _files(tmp_path.parent) - _files(out) == before  # everything written lies under --out
    (folder,) = [p for p in out.iterdir() if p.name.startswith("pseudo-labelled-")]
    (student,) = [p for p in out.iterdir() if p.name.startswith("adapt_tiny-without-gamma-self-trained-")]
    assert f"spikeforge eval {student} --data {corpus} --engine gamma --split all --protocol tf" in printed

    # every clip of gamma labelled as `predict` reads it, the surest half kept
    config, model, _ = load_run(teacher, "best")
    features = features_of(config["dataset"])
    with open(folder / LABELS) as f:
        rows = list(csv.DictReader(f))
    gamma = sorted(p for p in corpus.rglob("*.wav") if _engine_of(p, corpus) == "gamma")
    assert [Path(r["file"]) for r in rows] == gamma and len(gamma) == 12
    for r in rows:
        clip = classify_clip(model, read_wav(r["file"], features.sample_rate), features)
        assert r["label"] == CLASSES[clip.label] and float(r["probability"]) == pytest.approx(float(clip.probabilities.max()), abs=1e-4)
    surest = sorted(rows, key=lambda r: -float(r["probability"]))[:6]
    kept = [r for r in rows if r["kept"] == "1"]
    assert {r["file"] for r in kept} == {r["file"] for r in surest if r["label"] != SILENCE}

    # the training folder: the fold's own clips where they were, the kept gamma clips under their pseudo-labels
    links = {p.relative_to(folder).as_posix(): Path(os.path.realpath(p)) for p in folder.rglob("*.wav")}
    own = {rel: src for rel, src in links.items() if not rel.startswith("_background_noise_") and src not in set(gamma)}
    assert own == {p.relative_to(corpus).as_posix(): p.resolve() for p in corpus.rglob("*.wav")
                   if _engine_of(p, corpus) in ("alpha", "beta")}
    adapted = {rel: src for rel, src in links.items() if src in set(gamma)}
    assert sorted(map(str, adapted.values())) == sorted(str(Path(r["file"]).resolve()) for r in kept)
    by_source = {str(Path(r["file"]).resolve()): r["label"] for r in kept}
    for rel, src in adapted.items():
        word = rel.split("/")[0]
        assert (word if word != "unknown" else "_unknown_") == by_source[str(src)]
    for name in ("validation_list.txt", "testing_list.txt"):
        lines = (folder / name).read_text().split()
        assert lines and {_engine(line) for line in lines} == {"alpha", "beta"}
        assert set(lines) == {line for line in (corpus / name).read_text().split() if _engine(line) != "gamma"}

    # the student: the teacher's recipe on that folder, every engine in; its training split holds the pseudo-labels
    recipe = yaml.safe_load((student / "config.yaml").read_text())
    assert recipe["dataset"]["root"] == str(folder) and recipe["dataset"]["exclude_engines"] == []
    assert recipe["model"] == config["model"] and recipe["method"] == config["method"]
    train = DATASETS.get("speech_commands")(root=folder, split="train", cache=False, silence=0)
    read = {str(Path(os.path.realpath(folder / s))): CLASSES[int(y)] for s, y in zip(train.sources, train.targets) if s is not None}
    assert {src: read[src] for src in by_source} == by_source
    assert (student / "metrics.json").is_file()

    # a second round: the student labels gamma again; the first round's labels do not stay in its training folder
    again = tmp_path / "again"
    assert main(["adapt", str(student), "--data", str(corpus), "--engine", "gamma", "--out", str(again), "--no-progress"]) == 0
    (second,) = [p for p in again.iterdir() if p.name.startswith("pseudo-labelled-")]
    assert [p.name.rsplit("-", 2)[0] for p in again.iterdir() if p.is_dir() and p != second and p.name != "features"] == ["adapt_tiny-without-gamma-self-trained"]
    with open(second / LABELS) as f:
        kept = {str(Path(r["file"]).resolve()) for r in csv.DictReader(f) if r["kept"] == "1"}
    sources = [Path(os.path.realpath(p)) for p in second.rglob("*.wav")]
    assert sorted(str(p) for p in sources if p in set(gamma)) == sorted(kept)


def test_adapt_refuses_bad_input_and_writes_nothing(corpus, teacher, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "o"
    cases = [
        (["--data", str(tmp_path / "missing")], "no such folder"),
        (["--data", str(corpus), "--engine", "flite"], "not an engine of"),
        (["--data", str(corpus), "--keep", "0"], "--keep must be in"),
        (["--data", str(tmp_path / "empty")], "holds no WAV clips"),
        (["--data", str(tmp_path / "broken")], "none of the 1 WAV clips could be read"),
    ]
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "clip.wav").write_bytes(b"RIFF not a wave file")
    for args, message in cases:
        assert main(["adapt", str(teacher), *args, "--out", str(out), "--no-progress"]) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()


def test_adapt_refuses_a_run_with_word_rows_and_writes_nothing(corpus, teacher, tmp_path, capsys):  # noqa: F811
    run = run_copy_with_dataset(teacher, tmp_path / "words_run", words=True)
    out = tmp_path / "o"
    assert main(["adapt", str(run), "--data", str(corpus), "--out", str(out), "--no-progress"]) == 2
    assert "a pseudo-label names the class, not the word" in capsys.readouterr().err
    assert not out.exists()


def test_adapt_warns_when_the_unlabelled_clips_include_the_runs_own(corpus, teacher, tmp_path):  # noqa: F811
    with pytest.warns(UserWarning, match=r"12 of the unlabelled clips are clips the run learnt from with their labels"):
        assert main(["adapt", str(teacher), "--data", str(corpus), "--engine", "alpha", "--out", str(tmp_path / "o"), "--no-progress"]) == 0


def test_adapt_refuses_to_take_every_validation_clip(corpus, teacher, tmp_path, capsys):  # noqa: F811
    assert main(["adapt", str(teacher), "--data", str(corpus), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "would have none to be validated and tested on" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_adapt_reads_a_flat_folder_of_clips(corpus, teacher, tmp_path):  # noqa: F811
    flat = tmp_path / "recordings"
    flat.mkdir()
    gamma = sorted(p for p in corpus.rglob("*.wav") if _engine_of(p, corpus) == "gamma")
    for k, p in enumerate(gamma):
        shutil.copyfile(p, flat / f"take{k}.wav")
    out = tmp_path / "o"
    assert main(["adapt", str(teacher), "--data", str(flat), "--keep", "1.0", "--out", str(out), "--no-progress"]) == 0
    (folder,) = [p for p in out.iterdir() if p.name.startswith("pseudo-labelled-")]
    with open(folder / LABELS) as f:
        rows = list(csv.DictReader(f))
    assert sorted(Path(r["file"]).name for r in rows) == sorted(f"take{k}.wav" for k in range(12))
    train = DATASETS.get("speech_commands")(root=folder, split="train", cache=False, silence=0)
    read = sorted((Path(os.path.realpath(folder / s)).name, CLASSES[int(y)]) for s, y in zip(train.sources, train.targets)
                  if s is not None and Path(os.path.realpath(folder / s)).parent == flat)
    assert read == sorted((Path(r["file"]).name, r["label"]) for r in rows if r["label"] != SILENCE)
    assert all(Path(s).name.startswith("adapted_nohash_") for s in train.sources if s is not None and Path(os.path.realpath(folder / s)).parent == flat)


def test_adapt_finds_the_runs_own_clips_where_they_were_moved(corpus, teacher, tmp_path, capsys):  # noqa: F811
    moved = run_copy_with_dataset(teacher, tmp_path / "run", root=str(tmp_path / "gone"))
    args = ["adapt", str(moved), "--data", str(corpus), "--engine", "gamma", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    assert f"the run's own clips are not at {tmp_path / 'gone'}" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert main([*args, "--root", str(corpus), "--out", str(tmp_path / "o")]) == 0
    (folder,) = [p for p in (tmp_path / "o").iterdir() if p.name.startswith("pseudo-labelled-")]
    own = {Path(os.path.realpath(p)) for p in folder.rglob("*.wav") if not p.parent.name.startswith("_background")}
    assert {p for p in own if _engine_of(p, corpus) != "gamma"} == {p.resolve() for p in corpus.rglob("*.wav") if _engine_of(p, corpus) in ("alpha", "beta")}


def test_adapt_says_when_the_runs_own_clips_are_dangling_links(corpus, teacher, tmp_path, capsys):  # noqa: F811
    links = tmp_path / "links"  # a self-trained run's folder after its corpus moved: the links point nowhere
    links.mkdir()
    for name in ("validation_list.txt", "testing_list.txt", "speakers.csv"):
        shutil.copyfile(corpus / name, links / name)
    for p in corpus.rglob("*.wav"):
        (links / p.relative_to(corpus)).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(tmp_path / "gone" / p.name, links / p.relative_to(corpus))
    moved = run_copy_with_dataset(teacher, tmp_path / "run", root=str(links))
    assert main(["adapt", str(moved), "--data", str(corpus), "--engine", "gamma", "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert f"none of the run's own clips under {links} can be read" in capsys.readouterr().err and not (tmp_path / "o").exists()
