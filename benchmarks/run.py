"""Speed and memory of spikeforge against snnTorch, SpikingJelly and Norse on the two benchmark models.

    python benchmarks/run.py                 # full run, writes benchmarks/RESULTS.md and results.json
    python benchmarks/run.py --quick         # smoke run on small shapes, prints the report
    python benchmarks/run.py --activity 2 5 10 20 30 --models A   # the activity sweep, one section per rate
    python benchmarks/run.py --device cuda   # on a GPU (spikeforge's Triton LIF kernels, the peers' CUDA paths)

Activity: with `--activity R`, the weights of the spiking layers are scaled (gains found by
bisection, `bench_models.calibrate_gains`) so that each layer of the spikeforge model fires at R %
of its neuron-steps on the benchmark input; every implementation gets the same gains. The spike rate
of each layer is measured for every implementation before and after its timed rounds and printed
next to its times.

Timing: all implementations of a model live in this one process and are timed in interleaved
rounds (the order rotates every round), so slow phases of a shared CPU hit all of them alike;
the report gives medians and ratios taken within the run. Peak memory: each implementation
runs in a fresh subprocess, and the growth of its peak resident set size (VmHWM, reset through
/proc/self/clear_refs) over the RSS just before the measured call is reported, for one inference
and for two training steps.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from spikeforge import malloc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_models  # noqa: E402

HERE = Path(__file__).resolve().parent
PEERS = ("snntorch", "spikingjelly", "norse")
SHAPES = {"A": {"steps": 100, "batch": 32}, "B": {"steps": 300, "batch": 64}}
QUICK_SHAPES = {"A": {"steps": 20, "batch": 4}, "B": {"steps": 50, "batch": 8}}
ANALYSIS_HEADING = "## Analysis"
PROFILE_GROUPS = {  # profiler op names → what they are in these models
    "LIF scan forward": ("_FusedLIF",),
    "LIF scan backward": ("_FusedLIFBackward",),
    "convolutions and matmuls": ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::mm", "aten::addmm", "aten::bmm"),
    "layout copies": ("aten::copy_", "aten::constant_pad_nd", "aten::cat"),
    "finiteness checks of inputs": ("aten::eq", "aten::ne", "aten::abs", "aten::all", "aten::isfinite"),
}


def set_threads(threads: int) -> None:
    """The same thread budget for torch and for numba (spikeforge's compiled CPU kernels run on numba's pool)."""
    torch.set_num_threads(threads)
    try:
        import numba
    except ImportError:
        return
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    """Forward, cross-entropy, backward, optimiser step."""
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()


def inference(model: torch.nn.Module, x: torch.Tensor) -> None:
    """Forward without autograd."""
    with torch.no_grad():
        model(x)


def benchmark_input(model_name: str, steps: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The seeded input and labels every implementation gets."""
    return bench_models.make_batch(model_name, steps, batch, torch.Generator().manual_seed(1))


def setup(model_name: str, impl: str, steps: int, batch: int, gains=None, device: str = "cpu"):
    """(model, optimiser, x, y) with seeded weights (scaled by `gains`, default bench_models.GAINS) and data, on `device`."""
    torch.manual_seed(0)
    model = bench_models.build(model_name, impl, gains=gains).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = benchmark_input(model_name, steps, batch)
    return model, opt, x.to(device), y.to(device)


def timed(fn, device: str = "cpu") -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call (on CUDA, until the device has finished)."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    sync()
    return time.perf_counter() - w0, time.process_time() - c0


def time_model(model_name: str, impls: list[str], steps: int, batch: int, repeats: int, gains=None,
               device: str = "cpu") -> tuple[dict[str, dict[str, list[float]]], dict[str, list[list[float]]]]:
    """Per implementation: wall and CPU times of `repeats` train steps and inferences, interleaved; and the spike
    rates of its layers before and after the timed rounds."""
    runs = {impl: setup(model_name, impl, steps, batch, gains, device) for impl in impls}
    rates = {impl: [bench_models.layer_rates(model, x)] for impl, (model, _, x, _) in runs.items()}
    for impl, (model, opt, x, y) in runs.items():  # warm-up: allocator, lazy init, autograd caches
        train_step(model, opt, x, y)
        inference(model, x)
    times = {impl: {"train_wall": [], "train_cpu": [], "infer_wall": [], "infer_cpu": []} for impl in impls}
    for r in range(repeats):
        order = impls[r % len(impls):] + impls[: r % len(impls)]
        for impl in order:
            model, opt, x, y = runs[impl]
            w, c = timed(lambda: train_step(model, opt, x, y), device)
            times[impl]["train_wall"].append(w)
            times[impl]["train_cpu"].append(c)
            w, c = timed(lambda: inference(model, x), device)
            times[impl]["infer_wall"].append(w)
            times[impl]["infer_cpu"].append(c)
        print(f"  model {model_name}: round {r + 1}/{repeats} done", file=sys.stderr, flush=True)
    for impl, (model, _, x, _) in runs.items():
        rates[impl].append(bench_models.layer_rates(model, x))
    return times, rates


def _status_kib(field: str) -> int:
    """A `kB` field of /proc/self/status (VmRSS: resident set, VmHWM: its peak since the last reset)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _reset_peak_rss() -> None:
    """Set the peak resident set size (VmHWM) back to the current RSS (Linux `clear_refs` code 5)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_probe(device: str):
    """(reset the peak, read the peak growth in KiB since the reset) for host RSS, or CUDA memory on `device` "cuda"."""
    if device == "cuda":
        def reset():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return torch.cuda.memory_allocated()
        return reset, lambda base: (torch.cuda.max_memory_allocated() - base) / 1024

    def reset_rss():
        _reset_peak_rss()
        return _status_kib("VmRSS")
    return reset_rss, lambda base: _status_kib("VmHWM") - base


def memory_worker(model_name: str, impl: str, steps: int, batch: int, gains=None, device: str = "cpu") -> dict[str, float]:
    """Peak memory growth (MiB) over the memory before the first full-size step, for one inference and for two train steps.

    Host RSS on the CPU, allocated CUDA memory on a GPU. A warm-up on a 2-step, batch-1 input first
    pays the one-off allocations (kernel caches, autograd and optimiser state), so that the growth is
    the activations and gradients.
    """
    model, opt, x, y = setup(model_name, impl, steps, batch, gains, device)
    train_step(model, opt, x[:2, :1], y[:1])
    inference(model, x[:2, :1])
    reset, peak = _peak_probe(device)
    base = reset()
    inference(model, x)
    infer_peak = peak(base)
    base = reset()
    for _ in range(2):
        train_step(model, opt, x, y)
    train_peak = peak(base)
    return {"infer_peak_mib": infer_peak / 1024, "train_peak_mib": train_peak / 1024}


def measure_memory(model_name: str, impl: str, steps: int, batch: int, threads: int, gains=None,
                   device: str = "cpu") -> dict[str, float]:
    """Run `memory_worker` in a fresh interpreter and return its JSON."""
    cmd = [sys.executable, __file__, "--memory-worker", model_name, impl, "--steps", str(steps), "--batch", str(batch),
           "--threads", str(threads), "--device", device] + (["--gains", *map(repr, gains)] if gains else [])
    # A fixed mmap threshold makes glibc return every large freed block to the OS at once, so that the RSS
    # before a measured call holds no cached free memory that the call could reuse unseen.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def profile_model(model_name: str, impl: str, steps: int, batch: int, rows: int = 15, gains=None) -> str:
    """torch.profiler table (self CPU time) of one train step after a warm-up, as a fenced block."""
    from torch.profiler import ProfilerActivity, profile

    model, opt, x, y = setup(model_name, impl, steps, batch, gains)
    train_step(model, opt, x, y)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_step(model, opt, x, y)
    averages = prof.key_averages()
    table = averages.table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=48)
    total = sum(e.self_cpu_time_total for e in averages)
    groups = {name: 0.0 for name in PROFILE_GROUPS}
    for e in averages:
        for name, keys in PROFILE_GROUPS.items():
            if e.key in keys:
                groups[name] += e.self_cpu_time_total
    shares = ", ".join(f"{name} {t / 1e3:.0f} ms ({100 * t / total:.0f} %)" for name, t in groups.items())
    return f"Self CPU time {total / 1e3:.0f} ms: {shares}.\n\n```\n" + table.strip() + "\n```"


def dynamics_check() -> dict[str, float]:
    """Fraction of spikes where each peer's LIF differs from spikeforge's `lif_scan` on one random current."""
    from spikeforge.functional.lif import lif_scan

    current = torch.randn(100, 8, 16, generator=torch.Generator().manual_seed(2)) * 1.5
    with torch.no_grad():
        ours, _ = lif_scan(current, bench_models.BETA, torch.full((16,), bench_models.THRESHOLD), reset="subtract")
        return {peer: float((bench_models.PEERS[peer]()(current) != ours).float().mean()) for peer in PEERS}


def machine() -> dict[str, str]:
    """CPU model, cores, library versions."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "").split()
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    info = {"cpu": cpu, "vector units": vector, "logical cores": str(os.cpu_count()), "python": platform.python_version(),
            "torch": torch.__version__,
            "heap (timing)": "freed large blocks kept (spikeforge's default)" if malloc.keep_freed_memory_once() else "glibc's defaults"}
    head = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(HERE), "status", "--porcelain", "../src/spikeforge"], capture_output=True, text=True).stdout.strip()
    info["spikeforge commit"] = (head or "unknown") + (" with uncommitted changes in src/spikeforge" if dirty else "")
    for lib in ("snntorch", "spikingjelly", "norse"):
        try:
            from importlib.metadata import version

            info[lib] = version(lib)
        except Exception:  # not installed
            info[lib] = "not installed"
    return info


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def summarize(model_name: str, times: dict, memory: dict, rates: dict, activity: float | None) -> dict:
    """Medians, ratios against the floor and the fastest peer, the measured spike rates, and the targets."""
    med = {impl: {k: _median(v) for k, v in t.items()} for impl, t in times.items()}
    peers = [p for p in PEERS if p in med]
    fastest = min(peers, key=lambda p: med[p]["train_wall"]) if peers else None
    fastest_infer = min(peers, key=lambda p: med[p]["infer_wall"]) if peers else None
    out = {"model": model_name, "medians": med, "memory": memory, "fastest_peer": fastest, "fastest_peer_infer": fastest_infer,
           "rates": rates, "activity": activity}
    sf = med.get("spikeforge-fused")
    if sf and fastest:
        out["train_speedup_vs_fastest_peer"] = med[fastest]["train_wall"] / sf["train_wall"]
        out["infer_speedup_vs_fastest_peer"] = med[fastest_infer]["infer_wall"] / sf["infer_wall"]
        if "spikeforge-fused" in memory and fastest in memory:
            out["train_memory_vs_fastest_peer"] = memory["spikeforge-fused"]["train_peak_mib"] / memory[fastest]["train_peak_mib"]
    if sf and "floor" in med:
        out["train_vs_floor"] = sf["train_wall"] / med["floor"]["train_wall"]
        out["infer_vs_floor"] = sf["infer_wall"] / med["floor"]["infer_wall"]
    return out


def _rates_text(rates: list[list[float]]) -> str:
    """Per-layer spike rates in %, before → after the timed rounds."""
    if not rates or not rates[0]:
        return "–"
    return " → ".join("/".join(f"{100 * r:.1f}" for r in layer_rates) for layer_rates in rates)


def _targets(model_name: str, s: dict) -> list[str]:
    """Lines stating each target of issues 2 and 16 and whether this run meets it."""
    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

    lines = []
    activity = s.get("activity")
    if model_name == "A" and "train_vs_floor" in s and activity is None:
        r = s["train_vs_floor"]
        lines.append(f"- train step ≤ 1.05× the floor: {r:.2f}× — {mark(r <= 1.05)}")
    if model_name == "A" and "train_vs_floor" in s and activity is not None:  # issue 16, point 1
        r, limit = s["train_vs_floor"], 0.5 if activity <= 5 else 0.8 if activity >= 20 else None
        if limit is not None:
            lines.append(f"- train step ≤ {limit}× the floor at {activity:g} % activity: {r:.2f}× — {mark(r <= limit)}")
    if model_name == "A" and "infer_speedup_vs_fastest_peer" in s and activity is not None:
        r = s["infer_speedup_vs_fastest_peer"]
        lines.append(f"- inference ≥ 2× faster than the fastest peer ({s['fastest_peer_infer']}): {r:.2f}× — {mark(r >= 2)}")
    if model_name == "B" and "train_speedup_vs_fastest_peer" in s:
        r = s["train_speedup_vs_fastest_peer"]
        lines.append(f"- train step ≥ 4× faster than the fastest peer ({s['fastest_peer']}): {r:.2f}× — {mark(r >= 4)}")  # issue 16
        r = s["infer_speedup_vs_fastest_peer"]
        lines.append(f"- inference ≥ 3× faster than the fastest peer ({s['fastest_peer_infer']}): {r:.2f}× — {mark(r >= 3)}")
    if "train_memory_vs_fastest_peer" in s:
        r = s["train_memory_vs_fastest_peer"]
        lines.append(f"- peak training memory ≤ 0.5× the fastest peer's ({s['fastest_peer']}): {r:.2f}× — {mark(r <= 0.5)}")
    return lines


def sweep_table(summaries: dict) -> list[str]:
    """One row per (model, threads, activity): spikeforge's measured rates and its ratios to the floor and the fastest peer."""
    lines = ["| section | target activity | spikeforge spike rates (%) | train / floor | inference / floor | train speed-up vs fastest peer | inference speed-up vs fastest peer |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for name, s in summaries.items():
        def ratio(key):
            return f"{s[key]:.2f}×" if key in s else "–"
        target = "default init" if s["activity"] is None else f"{s['activity']:g} %"
        peer = f" ({s['fastest_peer']} / {s['fastest_peer_infer']})" if s.get("fastest_peer") else ""
        lines.append(f"| {name} | {target} | {_rates_text(s['rates'].get('spikeforge-fused', []))} | {ratio('train_vs_floor')} | "
                     f"{ratio('infer_vs_floor')} | {ratio('train_speedup_vs_fastest_peer')}{peer} | {ratio('infer_speedup_vs_fastest_peer')} |")
    return lines


def report(shapes: dict, summaries: dict, profiles: dict, info: dict, check: dict, command: str, wall: float,
           device: str = "cpu") -> str:
    """The markdown report."""
    lines = [
        "# Benchmarks: spikeforge against snnTorch, SpikingJelly and Norse",
        "",
        f"Command: `{command}` ({datetime.date.today().isoformat()}, {wall / 60:.1f} min in all).",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()) + ".",
        "Each model is timed once per thread count (torch intra-op and numba threads set alike).",
        "",
        "The CPU is shared with other jobs, so absolute timings are noisy; every implementation of a model",
        "is timed in the same process in interleaved rounds (the order rotates each round) and the ratios",
        "are taken within this one run. Times are medians over the rounds: wall clock, and the process's",
        "CPU time (less sensitive to other jobs when torch uses one thread). Train step = forward +",
        "cross-entropy + backward + Adam step; inference = forward under `torch.no_grad()`.",
        "Peak memory = growth of the peak resident set size (VmHWM, reset through /proc/self/clear_refs)",
        "over the RSS just before the measured call, in a fresh subprocess per implementation after a",
        "warm-up on a 2-step, batch-1 input, with glibc's mmap threshold fixed at 64 KiB so that freed",
        "buffers leave the RSS; for one inference and for two train steps.",
        "",
        "Models (benchmarks/bench_models.py): A = the low-activity paper's KWS net, input "
        f"[T={shapes['A']['steps']}, B={shapes['A']['batch']}, 1, 40], three conv LIF layers (64 channels, kernel 4×3, "
        "dilations (1,1), (4,3), (16,9), causal in time), readout averaged over time; B = dense LIF "
        f"64-256-256-11, T={shapes['B']['steps']}, B={shapes['B']['batch']}, 5 % input spikes, CE on spike counts. "
        "The floor is the same convolutions / linears and readout with no neuron dynamics. All LIFs: "
        "β = 0.7, threshold 1, subtract reset, sigmoid surrogate (scale 10; Norse: SuperSpike). "
        "spikeforge runs without the ‖W‖² threshold normalisation so that all run the same model, and (spikeforge-fused) "
        "with β and the threshold fixed, as in the peers' neurons; spikeforge-learned is its default layer, which "
        "learns β per layer and the threshold per channel. "
        "The default init of the spiking layers' weights is scaled (bench_models.GAINS) so that each layer "
        "fires at about 5 % of neuron-steps, as a trained KWS net does; a section with a target activity instead scales "
        "them so that each layer of the spikeforge model fires at that rate (bench_models.calibrate_gains; every "
        "implementation gets the same gains). Spike rates are measured per implementation and layer on the benchmark "
        "input, before → after its timed rounds (the train steps move the weights).",
        f"Device: {device}" + (" (CUDA times wait for the device; peak memory = allocated CUDA memory)." if device == "cuda" else "."),
        "Check of the dynamics (fraction of spikes that differ from spikeforge's `lif_scan` on one random",
        "current [100, 8, 16]): " + ", ".join(f"{k} {v:.3f}" for k, v in check.items()) + " (snnTorch subtracts the "
        "reset after the leak, U = βU + I − ϑS[n−1]; the others before it).",
        "",
    ]
    lines += ["## Summary", ""] + sweep_table(summaries) + [""]
    for name, s in summaries.items():
        lines += [f"## {name}", "", "| implementation | spike rates (%) | train step (s) | train CPU (s) | inference (s) | inference CPU (s) | peak memory train (MiB) | peak memory inference (MiB) | train / floor | train speed-up of spikeforge-fused |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        med, mem = s["medians"], s["memory"]
        sf = med.get("spikeforge-fused")
        for impl, m in med.items():
            floor = med.get("floor")
            vs_floor = f"{m['train_wall'] / floor['train_wall']:.2f}×" if floor else "–"
            speedup = f"{m['train_wall'] / sf['train_wall']:.2f}×" if sf else "–"
            mm = mem.get(impl, {})
            lines.append(
                f"| {impl} | {_rates_text(s['rates'].get(impl, []))} | {m['train_wall']:.4f} | {m['train_cpu']:.4f} | {m['infer_wall']:.4f} | {m['infer_cpu']:.4f} | "
                f"{mm.get('train_peak_mib', float('nan')):.0f} | {mm.get('infer_peak_mib', float('nan')):.0f} | {vs_floor} | {speedup} |"
            )
        lines += ["", "Targets:"] + _targets(s["model"], s) + [""]
    for key, table in profiles.items():
        lines += [f"## Profile: {key}, one train step (torch.profiler, sorted by self CPU time)", "", table, ""]
    return "\n".join(lines)


def check_args(device: str, activity: list[float] | None) -> None:
    """Refuse a CUDA run without a CUDA device and activities outside (0, 100) %, with the fix."""
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch; run on a GPU machine or use --device cpu")
    if activity and not all(0 < a < 100 for a in activity):
        raise SystemExit(f"--activity: give target spike rates in percent, between 0 and 100 (exclusive), got {activity}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small shapes and 2 rounds, report printed (smoke run)")
    p.add_argument("--models", nargs="+", default=["A", "B"], choices=["A", "B"])
    p.add_argument("--impls", nargs="+", default=list(bench_models.IMPLEMENTATIONS), choices=bench_models.IMPLEMENTATIONS)
    p.add_argument("--repeats", type=int, default=None, help="timed rounds per implementation (default 5, quick 2)")
    p.add_argument("--threads", type=int, nargs="+", default=None, help="torch and numba thread counts, one timing pass each (default 1 2; quick: 1)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    p.add_argument("--no-profile", action="store_true", help="skip the torch.profiler tables")
    p.add_argument("--out", type=Path, default=None, help="report path (default benchmarks/RESULTS.md; quick: print only)")
    p.add_argument("--glibc-defaults", action="store_true",
                   help="time under glibc's heap defaults instead of spikeforge's (freed large blocks kept: spikeforge.malloc)")
    p.add_argument("--activity", type=float, nargs="+", default=None, metavar="PERCENT",
                   help="target spike rates of the spiking layers, one section each (e.g. 2 5 10 20 30; default: the fixed init gains)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the models run (default cpu)")
    p.add_argument("--memory-worker", nargs=2, metavar=("MODEL", "IMPL"), help=argparse.SUPPRESS)
    p.add_argument("--gains", type=float, nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    check_args(args.device, args.activity)
    args.threads = args.threads or ([1] if args.quick or args.device == "cuda" else [1, 2])
    set_threads(args.threads[0])
    if args.memory_worker:
        print(json.dumps(memory_worker(*args.memory_worker, args.steps, args.batch, args.gains, args.device)))
        return 0

    # The timing process decides the heap settings before any implementation runs, so that all are timed under the
    # same ones (spikeforge's kernels would otherwise set them at their first call); the memory workers fix glibc's
    # thresholds themselves.
    if args.glibc_defaults:
        os.environ[malloc.OPT_OUT] = "0"
    malloc.keep_freed_memory_once()
    start = time.perf_counter()
    shapes = QUICK_SHAPES if args.quick else SHAPES
    repeats = args.repeats or (2 if args.quick else 5)
    summaries, profiles, raw, memory = {}, {}, {}, {}
    activities = args.activity or [None]
    gains = {(name, a): None if a is None else bench_models.calibrate_gains(name, benchmark_input(name, **shapes[name])[0], a / 100)
             for name in args.models for a in activities}
    for threads in args.threads:
        set_threads(threads)
        for name in args.models:
            sh = shapes[name]
            for activity in activities:
                g = gains[name, activity]
                where = f"model {name}, {threads} thread(s)" + ("" if activity is None else f", activity {activity:g} %")
                print(f"{where}: timing {len(args.impls)} implementations, {repeats} rounds", file=sys.stderr, flush=True)
                times, rates = time_model(name, list(args.impls), sh["steps"], sh["batch"], repeats, g, args.device)
                if (name, activity) not in memory:  # memory does not depend on the thread count: measured once
                    memory[name, activity] = {}
                    if not args.no_memory:
                        for impl in args.impls:
                            memory[name, activity][impl] = measure_memory(name, impl, sh["steps"], sh["batch"], threads, g, args.device)
                            print(f"  {where}: memory {impl} {memory[name, activity][impl]}", file=sys.stderr, flush=True)
                    if not args.no_profile and args.device == "cpu" and "spikeforge-fused" in args.impls:
                        profiles[f"{where}, spikeforge-fused"] = profile_model(name, "spikeforge-fused", sh["steps"], sh["batch"], gains=g)
                key = where[0].upper() + where[1:]
                summaries[key] = summarize(name, times, memory[name, activity], rates, activity)
                raw[key] = {"times": times, "rates": rates, "gains": g, "memory": memory[name, activity], "shapes": sh}
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:])
    text = report(shapes, summaries, profiles, machine(), dynamics_check(), command.strip(), time.perf_counter() - start,
                  args.device)
    out = args.out or (None if args.quick else HERE / "RESULTS.md")
    if out is None:
        print(text)
        return 0
    if out.exists():  # keep the hand-written analysis below its heading
        old = out.read_text()
        if ANALYSIS_HEADING in old:
            text += "\n" + old[old.index(ANALYSIS_HEADING):]
    out.write_text(text if text.endswith("\n") else text + "\n")
    data = HERE / "results.json" if out == HERE / "RESULTS.md" else out.with_suffix(".json")
    data.write_text(json.dumps({"raw": raw, "summaries": summaries}, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
