"""Honest keyword-spotting numbers: per-class and balanced accuracy, keyword recall, TF's class mix, and
`spikeforge eval RUN --data ROOT` on another folder with a speaker table."""

import csv
import re

import numpy as np
import pytest
import soundfile as sf
import torch

from spikeforge.cli import main
from spikeforge.data.audio_features import LogMelConfig
from spikeforge.data.speech_commands import CLASSES, SILENCE, UNKNOWN, SpeechCommands, speaker_groups, tf_protocol
from spikeforge.metrics.classification import balanced_accuracy, confusion_matrix, grouped_accuracy, keyword_recall, per_class_accuracy
from spikeforge.train.loading import load_run
from test_harness_tiny import percent, run_copy_with_dataset, tiny_kws_recipe, train_run

SR = 16000


def test_balanced_accuracy_and_keyword_recall_see_what_plain_accuracy_hides():
    classes = ("_silence_", "_unknown_", "yes", "no")
    # 80 unknown clips all right, 10 yes and 10 no all called unknown, 10 silence right: plain accuracy 81.8 %
    targets = torch.tensor([1] * 80 + [2] * 10 + [3] * 10 + [0] * 10)
    predictions = torch.tensor([1] * 80 + [1] * 10 + [1] * 5 + [3] * 5 + [0] * 10)
    cm = confusion_matrix(targets, predictions, 4)
    assert cm[2, 1] == 10 and cm[3, 3] == 5 and int(cm.sum()) == 110
    assert per_class_accuracy(cm).tolist() == [1.0, 1.0, 0.0, 0.5]
    assert balanced_accuracy(cm) == pytest.approx(0.625)
    assert keyword_recall(cm, classes) == pytest.approx(5 / 20)
    assert keyword_recall(cm, ("a", "b", "c", "d")) is None  # no filler classes: not a keyword task
    empty = confusion_matrix(torch.tensor([0, 0]), torch.tensor([0, 1]), 3)
    assert torch.isnan(per_class_accuracy(empty)[2]) and balanced_accuracy(empty) == pytest.approx(0.5)
    assert grouped_accuracy(["a", "b", "a"], torch.tensor([True, False, False])) == {"a": (0.5, 2), "b": (0.0, 1)}
    bands = ["10–15 dB", "5–10 dB", "0–5 dB", "25–30 dB"]  # natural order: numbers by value
    assert list(grouped_accuracy(bands, torch.ones(4, dtype=torch.bool))) == ["0–5 dB", "5–10 dB", "10–15 dB", "25–30 dB"]


def test_tf_protocol_keeps_every_keyword_and_ten_percent_unknown_and_silence():
    unknown, yes = CLASSES.index(UNKNOWN), CLASSES.index("yes")
    files = [(f"yes/{i}.wav", yes) for i in range(95)] + [(f"bed/{i}.wav", unknown) for i in range(200)]
    kept, silence = tf_protocol(files, seed=3)
    assert sum(1 for _, y in kept if y == yes) == 95
    assert sum(1 for _, y in kept if y == unknown) == 10 == silence  # ceil(0.1 · 95)
    assert kept != tf_protocol(files, seed=4)[0] and kept == tf_protocol(files, seed=3)[0]


def _tone_tree(root, speakers, engines):
    """yes / no / bed clips as chirps, one per speaker, in the GSC layout with a speaker table naming an engine per speaker."""
    rng = np.random.default_rng(len(speakers))
    t = np.arange(SR // 2) / SR
    for word, f0 in (("yes", 300.0), ("no", 900.0), ("bed", 2000.0)):
        (root / word).mkdir(parents=True, exist_ok=True)
        for spk in speakers:
            wave = 0.5 * np.sin(2 * np.pi * (f0 * rng.uniform(0.95, 1.05)) * t) * np.hanning(len(t))
            sf.write(root / word / f"{spk}_nohash_0.wav", wave.astype(np.float32), SR, subtype="PCM_16")
    (root / "_background_noise_").mkdir(exist_ok=True)
    sf.write(root / "_background_noise_" / "white_noise.wav", (0.05 * rng.standard_normal(5 * SR)).astype(np.float32), SR)
    (root / "validation_list.txt").write_text("")
    test = [f"{w}/{s}_nohash_0.wav" for w in ("yes", "no", "bed") for s in speakers]
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    with open(root / "speakers.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["speaker", "engine", "voice"])
        for spk, engine in zip(speakers, engines):
            w.writerow([spk, engine, f"{engine}-voice"])


@pytest.fixture(scope="module")
def run_and_heldout(tmp_path_factory):
    base = tmp_path_factory.mktemp("eval")
    own = base / "own"
    _tone_tree(own, [f"{i:08x}" for i in range(6)], ["a"] * 6)
    (own / "validation_list.txt").write_text("yes/00000005_nohash_0.wav\nno/00000005_nohash_0.wav\n")
    (own / "testing_list.txt").write_text("yes/00000004_nohash_0.wav\nno/00000004_nohash_0.wav\n")
    dataset = {"root": str(own), "cache": False,  # augmentation on: trains through it
               "background_prob": 0.5, "time_shift_steps": 3, "time_masks": 1, "freq_masks": 1}
    tiny_kws_recipe(base / "tiny.yaml", dataset, name="eval_tiny")
    assert main(["train", str(base / "tiny.yaml"), "--out", str(base / "runs"), "--no-progress"]) == 0
    heldout = base / "heldout"
    _tone_tree(heldout, [f"{i:08x}" for i in range(100, 104)], ["flite", "flite", "pico", "pico"])
    return next((base / "runs").iterdir()), heldout


def test_eval_on_another_folder_reports_every_class_and_each_engine(run_and_heldout, capsys):
    run_dir, heldout = run_and_heldout
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--data", str(heldout), "--protocol", "all"]) == 0
    out = capsys.readouterr().out
    # the same numbers computed here from the model's own predictions on the same clips
    config, model, _ = load_run(run_dir)
    data = SpeechCommands(heldout, "test", LogMelConfig(), silence=None)
    with torch.no_grad():
        predicted = model(data.features.transpose(0, 1)).mean(0).argmax(-1)
    cm = confusion_matrix(data.targets, predicted, len(CLASSES))
    assert f"on the test split of {heldout}, {len(data)} samples" in out
    assert percent(out, "accuracy") == pytest.approx(100 * float((predicted == data.targets).double().mean()), abs=0.01)
    assert percent(out, "balanced accuracy") == pytest.approx(100 * balanced_accuracy(cm), abs=0.01)
    assert percent(out, "keyword recall") == pytest.approx(100 * keyword_recall(cm, CLASSES), abs=0.01)
    for name in ("yes", "no", UNKNOWN, SILENCE):
        assert re.search(rf"^  {name}\s+[0-9.]+% \({int(cm[CLASSES.index(name)].sum())} clips\)", out, re.M)
    _, groups = speaker_groups(heldout, data.sources)
    table = grouped_accuracy(groups, predicted == data.targets)
    assert "accuracy per engine:" in out and set(table) == {"flite", "pico", "_background_"}
    for engine, (acc, n) in table.items():
        assert re.search(rf"^  {engine}\s+{100 * acc:6.2f}% \({n} clips\)", out, re.M)
    assert "confusion matrix (rows: true class, columns: predicted):" in out


def test_eval_tf_protocol_and_group_by_and_bad_folder(run_and_heldout, capsys, tmp_path):
    run_dir, heldout = run_and_heldout
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--data", str(heldout), "--group-by", "voice"]) == 0
    out = capsys.readouterr().out
    # TF mix: 8 keyword clips, ceil(0.8) = 1 unknown, 1 silence
    assert ", 10 samples" in out and "accuracy per voice:" in out and "flite-voice" in out
    assert main(["eval", str(run_dir), "--data", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["eval", str(run_dir), "--data", str(heldout), "--group-by", "accent"]) == 2
    assert "--group-by" in capsys.readouterr().err


def test_eval_groups_by_a_clip_condition_from_clips_csv(run_and_heldout, capsys, tmp_path):
    import shutil

    run_dir, heldout = run_and_heldout
    folder = tmp_path / "conditions"
    shutil.copytree(heldout, folder)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.glob("*/*_nohash_0.wav"))
    band = {f: ("0–5 dB" if i % 2 else "20–25 dB") for i, f in enumerate(files)}
    with open(folder / "clips.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "snr_db", "snr_band"])
        w.writerows([name, "0", b] for name, b in band.items())
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--data", str(folder), "--protocol", "all", "--group-by", "snr_band"]) == 0
    out = capsys.readouterr().out
    config, model, _ = load_run(run_dir)
    data = SpeechCommands(folder, "test", LogMelConfig(), silence=None)
    with torch.no_grad():
        predicted = model(data.features.transpose(0, 1)).mean(0).argmax(-1)
    table = grouped_accuracy([band[s] if s is not None else "_background_" for s in data.sources], predicted == data.targets)
    assert "accuracy per snr_band:" in out and {"0–5 dB", "20–25 dB"} <= set(table)
    for name, (acc, n) in table.items():
        assert re.search(rf"^  {name}\s+{100 * acc:6.2f}% \({n} clips\)", out, re.M)
    _, groups = speaker_groups(folder, [files[0], None, "yes/unlisted_nohash_0.wav"], "snr_band")
    assert groups == ["20–25 dB", "_background_", "?"]  # silence clips have no file of their own


def test_run_summary_reports_balanced_accuracy_and_keyword_recall(run_and_heldout):
    import json

    run_dir, _ = run_and_heldout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    cm = torch.tensor(metrics["confusion"])
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy(cm))
    assert metrics["keyword_recall"] == pytest.approx(keyword_recall(cm, CLASSES))
    assert set(metrics["per_class_accuracy"]) == set(CLASSES)
    from spikeforge.train.report import summary_table

    table = summary_table(metrics)
    assert "balanced accuracy" in table and "keyword recall" in table


def test_eval_of_several_runs_is_their_ensemble_and_refuses_runs_on_other_samples(run_and_heldout, capsys, tmp_path):


    run_dir, heldout = run_and_heldout
    # the second member on the other front end (dB below the peak): each member computes its own features
    other = train_run(run_dir / "config.yaml", tmp_path / "runs", "--set", "seed=1", "--set", "dataset.normalization=db")
    capsys.readouterr()
    assert main(["eval", str(run_dir), str(other), "--data", str(heldout), "--protocol", "all"]) == 0
    out = capsys.readouterr().out
    # by hand: each run's softmax of its time-averaged scores on its own features, averaged over the two runs
    data, data_db = (SpeechCommands(heldout, "test", LogMelConfig(normalization=n), silence=None) for n in ("clip", "db"))
    with torch.no_grad():
        probs = [torch.softmax(load_run(r)[1](d.features.transpose(0, 1)).mean(0), -1) for r, d in ((run_dir, data), (other, data_db))]
    predicted = ((probs[0] + probs[1]) / 2).argmax(-1)
    singles = [float((p.argmax(-1) == data.targets).double().mean()) for p in probs]
    cm = confusion_matrix(data.targets, predicted, len(CLASSES))
    assert f"ensemble of 2 runs (the mean of their softmax scores; best checkpoints) on the test split of {heldout}, {len(data)} samples" in out
    ensemble_line = re.search(r"^accuracy ([0-9.]+)%", out, re.MULTILINE)  # the line after the members' lines
    assert float(ensemble_line.group(1)) == pytest.approx(100 * float((predicted == data.targets).double().mean()), abs=0.01)
    assert percent(out, "balanced accuracy") == pytest.approx(100 * balanced_accuracy(cm), abs=0.01)
    for r, acc in zip((run_dir, other), singles):
        assert f"  {r} (step " in out and f"accuracy {100 * acc:.2f}%" in out
    assert "accuracy per engine:" in out
    # a copy of the run reading another folder as its own data sees other test clips: refused, naming the run
    moved = run_copy_with_dataset(run_dir, tmp_path / "moved", root=str(heldout))
    assert main(["eval", str(run_dir), str(moved)]) == 2
    assert f"{moved} sees other samples than {run_dir}" in capsys.readouterr().err
    assert main(["eval", str(run_dir), str(other), "--neurobench"]) == 2
    assert "one run folder" in capsys.readouterr().err


def test_a_student_distilled_from_a_run_learns_from_its_softened_scores_on_the_same_batch(run_and_heldout, tmp_path):
    import torch.nn.functional as F

    from spikeforge.registry import METHODS
    from spikeforge.train.encode import encode

    run_dir, _ = run_and_heldout
    config, teacher, _ = load_run(run_dir)
    data = SpeechCommands(config["dataset"]["root"], "train", LogMelConfig(), silence=None)
    x, y = encode(data.features[:6], {"name": "sequence"}), data.targets[:6]
    torch.manual_seed(1)
    student = load_run(run_dir)[1].train()
    for p in student.parameters():  # another network than the teacher
        p.data.add_(0.3 * torch.randn_like(p))
    method = METHODS.get("surrogate_bptt")(distill_from=[str(run_dir), str(run_dir)], distill_weight=0.7, distill_temperature=3.0)
    out = method.step(student, x, y)
    with torch.no_grad():  # by hand, on the student's logits of this step: the two (equal) teachers' mean softmax(z / T), 0.3·CE + 0.7·T²·KL
        p = F.softmax(teacher(x).mean(0) / 3.0, -1)
        kl = (p * (p.log() - F.log_softmax(out.logits / 3.0, -1))).sum(-1).mean()
        ce = F.cross_entropy(out.logits, y)
    assert out.extras["distill_loss"] == pytest.approx(9 * float(kl), rel=1e-5) and float(kl) > 1e-3
    assert out.extras["task_loss"] == pytest.approx(float(ce), rel=1e-5)
    assert float(out.loss.detach()) == pytest.approx(0.3 * float(ce) + 0.7 * 9 * float(kl), rel=1e-5)
    student.eval()  # validation and test: the task loss only
    evaluated = method.step(student, x, y)
    assert float(evaluated.loss.detach()) == pytest.approx(float(F.cross_entropy(evaluated.logits, y)), rel=1e-5)
    # a whole run distilled from the trained one, recorded per epoch
    assert main(["train", str(run_dir / "config.yaml"), "--set", f"method.distill_from=[{run_dir}]", "--out", str(tmp_path), "--no-progress"]) == 0
    rows = list(csv.DictReader((next(tmp_path.iterdir()) / "metrics.csv").read_text().splitlines()))
    assert len(rows) == config["epochs"] and all(float(r["train_distill_loss"]) > 0 for r in rows)
