"""The hybrid paper's tables from run folders of a recipe with a `one_spike_conversion` stage (Tables 1–4).

One row per run: the ANN's test accuracy, the SNN's right after conversion (with the paper's ϑ_out = 1, and with
the recorded ϑ_out with and without force firing), after STDBP fine-tuning, the epochs to converge (the first
fine-tuning epoch whose validation accuracy is within `tolerance` points of the best) and each stage's time; a run
whose fine-tuning stage is still running shows its conversion and the epochs so far, and no final accuracy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from spikeforge.train import runfolder

TRANSITION_RECORD = "transition.json"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def converged_epoch(val_accuracy: list[float], tolerance: float = 0.5) -> int:
    """First epoch (1-based) whose accuracy is within `tolerance` points of the best one."""
    best = max(val_accuracy)
    return next(i + 1 for i, a in enumerate(val_accuracy) if 100 * (best - a) <= tolerance)


def conversion_arm(run: Path) -> dict:
    """The numbers of one run: the conversion record, the stage before it and the stage after it."""
    run = Path(run)
    config = runfolder.read_config(run)
    stages = list(config.get("stages") or {})
    after = next((name for name in stages if (config["stages"][name].get("transition") or {}).get("name") == "one_spike_conversion"), None)
    if after is None:
        raise ValueError(f"{run}: its recipe has no stage with transition one_spike_conversion; pass runs of a hybrid recipe (e.g. hybrid_fc2)")
    before = stages[stages.index(after) - 1]
    folder = run / "stages"
    record_path = folder / after / TRANSITION_RECORD
    if not record_path.exists():
        raise FileNotFoundError(f"{run}: stage {after!r} has not started yet (no {record_path.name}); resume it with spikeforge train --resume {run}")
    record = json.loads(record_path.read_text())["report"]
    history = runfolder.read_history(folder / after)
    done = (folder / after / runfolder.JSON).exists()
    return {"label": f"{config['name']} ({run.name})", "record": record, "history": history,
            "ann_seconds": runfolder.read_metrics(folder / before)["wall_time_s"],
            "snn_seconds": runfolder.read_metrics(folder / after)["wall_time_s"] if done else None,  # None: the stage is still running
            "final_acc": runfolder.read_metrics(folder / after)["accuracy"] if done else None,
            "force_firing": config["stages"][after]["transition"]["force_firing"], "epochs": len(history)}


def conversion_table(runs: list[Path], tolerance: float = 0.5) -> str:
    """Markdown: the Tables 2–4 row format per run, then each run's Table 1 constraint report and fine-tuning curve."""
    arms = [conversion_arm(run) for run in runs]
    lines = ["Init acc. is the SNN right after conversion, in brackets the ANN it came from (the paper's f_s(·; θ_a) "
             "[f_a(·; θ_a)]), with the output threshold ϑ_out of the run and, in the first column, with the paper's "
             "ϑ_out = 1 (and the paper's windows c_0 = ϑ_l = 1 where the run calibrated them); final is the test accuracy of the best STDBP fine-tuning epoch (by validation accuracy).", "",
             "| run | init acc. FF, ϑ_out = 1 (%) | ϑ_out | init acc. FF (%) | init acc. w/o FF (%) | final (%) | "
             "epochs to converge | ANN s | SNN s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for arm in arms:
        r, ann = arm["record"], _pct(arm["record"]["ann_acc"])
        done = arm["final_acc"] is not None
        history = arm["history"]  # with validate_start its first row is epoch 0, the converted SNN: 0 epochs if it is as good
        converged = int(history[converged_epoch([h["val_acc"] for h in history], tolerance) - 1]["epoch"]) if done and history else "-"
        final, snn_s = (_pct(arm["final_acc"]), f"{arm['snn_seconds']:.0f}") if done else (f"— (not finished: {len(arm['history'])} epochs so far)", "—")
        lines.append(f"| {arm['label']} | {_pct(r['init_acc_ff1_theta1'])} [{ann}] | {r['output_threshold']:.3g} | "
                     f"{_pct(r['init_acc_ff1'])} [{ann}] | {_pct(r['init_acc_ff0'])} [{ann}] | {final} | "
                     f"{converged} | {arm['ann_seconds']:.0f} | {snn_s} |")
    for arm in arms:
        lines += ["", f"### {arm['label']}: constraints after the ANN stage (Table 1, one test batch)", "",
                  "| layer | min Σw | max Σw | h < 1 (%) |", "| --- | --- | --- | --- |"]
        for layer, row in arm["record"]["table1"].items():
            below = _pct(row["h_below_1"]) if "h_below_1" in row else "-"
            lines.append(f"| {layer} | {row['weight_sum_min']:.3f} | {row['weight_sum_max']:.3f} | {below} |")
        stats = ", ".join(f"{k} {100 * v:.1f}%" for k, v in arm["record"]["init_stats_ff1"].items())
        ff = "FF" if arm["force_firing"] else "w/o FF"
        lines += ["", f"Right after conversion (FF, one test batch): {stats or 'no statistics'}.", "",
                  f"| fine-tuning epoch ({ff}) | validation acc. (%) | train loss | time in stage (s) |", "| --- | --- | --- | --- |"]
        lines += [f"| {int(h['epoch'])} | {_pct(h['val_acc'])} | {'–' if math.isnan(h.get('train_loss', math.nan)) else format(h['train_loss'], '.4f')} | "
                  f"{h['time_s']:.0f} |" for h in arm["history"]]
    return "\n".join(lines) + "\n"
