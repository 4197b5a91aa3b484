"""Checkpoints: weights in safetensors, trainer state loaded with `weights_only=True`, written atomically.

Layout of `RUN/checkpoints/`: one folder per saved step (`step-00000120/` holding `weights.safetensors`
and `trainer.pt`; a step saved again gets a new folder `step-00000120-2/`), each written under a temporary
name and renamed when complete, and the links `last` and `best` pointing at one of them (replaced by an
atomic rename). A crash or a failed write (disk full, read-only) at any moment leaves `last` pointing at a
complete checkpoint; temporaries left by dead processes are removed by the next save.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from spikeforge.train.atomic import atomic_symlink, file_mode, write_failed

WEIGHTS = "weights.safetensors"
STATE = "trainer.pt"


def save_checkpoint(folder: str | os.PathLike, step: int, model: nn.Module, state: dict, links: tuple[str, ...] = ("last",)) -> Path:
    """Write the checkpoint of `step` into a new folder, point `links` at it, delete unreferenced ones."""
    folder = Path(folder)
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)
        target = _free_name(folder, f"step-{step:08d}")
        tmp = folder / f".{target.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            save_file(tensors, tmp / WEIGHTS, metadata={"step": str(step)})
            torch.save({**state, "step": step}, tmp / STATE)
            for file in (tmp / WEIGHTS, tmp / STATE):
                os.chmod(file, file_mode())  # safetensors creates 0600
                with open(file, "rb") as f:
                    os.fsync(f.fileno())
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        for link in links:
            atomic_symlink(folder / link, target.name)
    except OSError as err:
        needed = sum(t.numel() * t.element_size() for t in tensors.values()) * 3  # weights + optimiser moments
        raise write_failed(err, folder, needed) from None
    _prune(folder)
    return target


def _free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `name-2`, `name-3`, … if taken (a step saved twice keeps the older folder until `last` moves)."""
    target, k = folder / name, 1
    while target.exists():
        k += 1
        target = folder / f"{name}-{k}"
    return target


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete `.*.<pid>.tmp` leftovers in `folder` whose process is gone; returns what was removed."""
    removed = []
    for path in folder.glob(".*.tmp"):
        pid = path.name.rsplit(".", 2)[-2]
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prune(folder: Path) -> None:
    keep = {os.readlink(folder / link) for link in ("last", "best") if (folder / link).is_symlink()}
    for path in folder.glob("step-*"):
        if path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)


def resolve(path: str | os.PathLike, which: str = "last") -> Path:
    """The checkpoint folder for a run folder, its `checkpoints/` folder, or a checkpoint folder itself."""
    path = Path(path)
    for candidate in (path, path / which, path / "checkpoints" / which):
        if (candidate / WEIGHTS).exists() or (candidate / STATE).exists():
            return candidate.resolve()
    raise FileNotFoundError(f"no {which!r} checkpoint under {path}; expected {path}/checkpoints/{which}/{WEIGHTS} (train the run first, or pass the run folder)")


def _folder(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path if path.name.startswith("step-") else resolve(path)


def load_weights(path: str | os.PathLike, model: nn.Module) -> int:
    """Load a checkpoint's weights into `model` (strictly), returning its step; clear errors for corrupt or mismatched files."""
    file = _folder(path) / WEIGHTS
    try:
        with safe_open(file, framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as err:
        raise ValueError(f"checkpoint {file} is corrupt or unreadable ({err}); delete it or resume from another checkpoint") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = [f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(v.shape)}" for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = [f"missing {missing[:4]}" if missing else "", f"unexpected {unexpected[:4]}" if unexpected else "", "; ".join(shapes[:4])]
        raise ValueError(f"checkpoint {file} does not match the model ({'; '.join(p for p in parts if p)}); it was written for a different model or recipe")
    model.load_state_dict(tensors, strict=True)
    return int(meta.get("step", -1))


def load_state(path: str | os.PathLike) -> dict:
    """The trainer state of a checkpoint, read with `torch.load(weights_only=True)` (no code runs from the file)."""
    file = _folder(path) / STATE
    if not file.exists():
        raise FileNotFoundError(f"checkpoint {file.parent} has no {STATE}; it is incomplete, resume from another checkpoint")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise ValueError(f"checkpoint {file} is corrupt or not a spikeforge trainer state ({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None


def load_checkpoint(path: str | os.PathLike, model: nn.Module) -> dict:
    """Load weights into `model` and return the trainer state, checking both files belong to the same step."""
    folder = _folder(path)
    step = load_weights(folder, model)
    state = load_state(folder)
    if state.get("step") != step:
        raise ValueError(f"checkpoint {folder}: weights are from step {step} but the trainer state from step {state.get('step')}; the files were mixed up")
    return state
