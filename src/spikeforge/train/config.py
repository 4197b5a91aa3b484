"""Recipes: load a YAML file, apply `--set key=value` overrides, validate every key and type.

An unknown key or a wrong type is a one-line `RecipeError` naming the key and the closest
valid one. Sections that name a factory (`dataset`, `encoder`, `model`, `method`) are checked
against that factory's signature, so a typo in a model argument is caught before training.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from spikeforge.registry import DATASETS, METHODS, MODELS, TRANSITIONS

#: The recipes shipped inside the package (package data, so a wheel or a non-editable install has them too).
PACKAGE_RECIPES = Path(__file__).resolve().parents[1] / "recipes"
#: Where named recipes are looked up: `recipes/` of the working directory (a user's own), then the package's.
RECIPE_DIRS = (Path("recipes"), PACKAGE_RECIPES)
_REQUIRED = object()


class RecipeError(ValueError):
    """A recipe key is unknown, missing or of the wrong type."""


@dataclass(frozen=True)
class Field:
    """One recipe key: accepted types, default (or required) and optional allowed values."""

    types: tuple[type, ...]
    default: Any = _REQUIRED
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    below: float | None = None  # exclusive upper bound
    items: "Field | None" = None  # a list's elements (from list[float] and the like)


_NONE = type(None)
TOP: dict[str, Field] = {
    "name": Field((str,)),
    "seed": Field((int,), 0),
    "epochs": Field((int,), 1, minimum=1),
    "batch_size": Field((int,), 64, minimum=1),
    "eval_batch_size": Field((int,), 256, minimum=1),
    "grad_clip": Field((float, _NONE), None, minimum=0.0),
    "checkpoint_every": Field((int,), 0, minimum=0),
    "validate_start": Field((bool,), False),  # validate the starting model (epoch 0): the best checkpoint may be the start
    "ema_decay": Field((float, _NONE), None, minimum=0.0, below=1.0),  # validate, test and save an EMA of the weights
    "sampler": Field((str,), "random", choices=("random", "weighted")),
    "device": Field((str,), "auto", choices=("auto", "cpu", "cuda")),
}
SECTIONS = ("dataset", "encoder", "model", "method", "optimizer", "schedule", "stages")
#: What one stage of a staged recipe may set; the rest of the recipe (data, model, seed) is shared by all stages.
STAGE_KEYS = ("epochs", "batch_size", "grad_clip", "checkpoint_every", "validate_start", "ema_decay")
STAGE_SECTIONS = ("transition", "method", "optimizer", "schedule")
OPTIMIZERS: dict[str, dict[str, Field]] = {
    "adam": {"lr": Field((float,), 1e-3, minimum=0.0), "weight_decay": Field((float,), 0.0, minimum=0.0),
             "betas": Field((list,), [0.9, 0.999]), "eps": Field((float,), 1e-8, minimum=0.0)},
    "sgd": {"lr": Field((float,), 1e-2, minimum=0.0), "weight_decay": Field((float,), 0.0, minimum=0.0),
            "momentum": Field((float,), 0.0, minimum=0.0), "nesterov": Field((bool,), False)},
}
for _fields in OPTIMIZERS.values():  # sharpness-aware steps (train.optim.sharpness_aware_gradient); 0: off
    _fields["sam_rho"] = Field((float,), 0.0, minimum=0.0)
OPTIMIZERS["radam"] = dict(OPTIMIZERS["adam"])
SCHEDULES: dict[str, dict[str, Field]] = {
    "constant": {},
    "warmup_exp": {"warmup_epochs": Field((float,), 1.0, minimum=0.0), "gamma": Field((float,), 0.85, minimum=0.0)},
    "cosine_restarts": {"t0": Field((float,), 10.0, minimum=1e-9), "t_mult": Field((int,), 1, minimum=1),
                        "eta_min": Field((float,), 0.0, minimum=0.0)},
}
#: Keys of the factory sections that the harness itself reads (not passed to the factory).
DATASET_KEYS = {"name": Field((str,)), "val_fraction": Field((float,), 0.0, minimum=0.0)}
ENCODER_KEYS = {"name": Field((str,), "sequence")}


def _closest(key: str, valid: list[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean {prefix + close[0]!r}?" if close else ""
    return f"{hint} (valid: {', '.join(sorted(valid)) or 'none'})"


def _coerce(path: str, value: Any, field: Field) -> Any:
    """Return `value` converted to one of `field.types`, or raise a RecipeError naming `path`."""
    if value is None and _NONE in field.types:
        return None
    if bool in field.types and isinstance(value, bool):
        out = value
    elif float in field.types and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            out = float(value)  # YAML reads 1e-3 (no dot) as a string
        except ValueError:
            out = value if str in field.types else _wrong_type(path, value, field)  # e.g. float | "auto"
    elif int in field.types and isinstance(value, int) and not isinstance(value, bool):
        out = value
    elif str in field.types and isinstance(value, str):
        out = value
    elif list in field.types and isinstance(value, (list, tuple)):
        out = [_coerce(f"{path}[{i}]", v, field.items) for i, v in enumerate(value)] if field.items is not None else list(value)
    else:
        out = _wrong_type(path, value, field)
    if field.choices is not None and out not in field.choices:
        raise RecipeError(f"{path}: {out!r} is not allowed" + _closest(str(out), list(map(str, field.choices))))
    number = isinstance(out, (int, float)) and not isinstance(out, bool)
    if number and field.minimum is not None and out < field.minimum:
        raise RecipeError(f"{path}: must be >= {field.minimum}, got {out}")
    if number and field.below is not None and out >= field.below:
        raise RecipeError(f"{path}: must be < {field.below}, got {out}")
    return out


def _wrong_type(path: str, value: Any, field: Field) -> Any:
    names = " or ".join("null" if t is _NONE else t.__name__ for t in field.types)
    raise RecipeError(f"{path}: expected {names}, got {type(value).__name__} {value!r}")


def _check_fields(prefix: str, section: dict, fields: dict[str, Field], extra: set[str] = frozenset(), context: str = "") -> dict:
    """Validate `section` against `fields` (plus free `extra` keys), fill defaults, return a new dict."""
    out = {}
    for key, value in section.items():
        if key in extra:
            out[key] = value
            continue
        if key not in fields:
            raise RecipeError(f"unknown key {prefix + key!r}{context}" + _closest(key, list(fields) + sorted(extra), prefix))
        out[key] = _coerce(prefix + key, value, fields[key])
    for key, field in fields.items():
        if key not in out:
            if field.default is _REQUIRED:
                raise RecipeError(f"missing key {prefix + key!r}")
            out[key] = copy.deepcopy(field.default)
    return out


def _hint_to_field(hint: Any, default: Any) -> Field | None:
    """A Field for a simple annotation (int, float, str, bool, list, unions, Literal); None when too complex."""
    simple = {int: int, float: float, str: str, bool: bool, list: list, tuple: list, _NONE: _NONE}
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return Field(tuple({type(a) for a in typing.get_args(hint)}), default, choices=typing.get_args(hint))
    members = typing.get_args(hint) if origin in (typing.Union, types.UnionType) else (hint,)
    out, items = [], None
    for member in members:
        base = typing.get_origin(member) or member
        if base not in simple:
            return None
        out.append(simple[base])
        kinds = {a for a in typing.get_args(member) if a is not Ellipsis}
        if simple[base] is list and len(kinds) == 1 and next(iter(kinds)) in simple:  # list[float], tuple[int, int], ...
            items = Field((simple[next(iter(kinds))],))
    return Field(tuple(dict.fromkeys(out)), default, items=items)


def check_factory_kwargs(prefix: str, fn: Callable, kwargs: dict, supplied: set[str] = frozenset()) -> dict:
    """Check `kwargs` against `fn`'s signature: unknown names, missing required ones, simple types."""
    sig = inspect.signature(fn)
    params = {n: p for n, p in sig.parameters.items() if n not in supplied and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolved forward references: names are still checked, types are not
        hints = {}
    out = {}
    for key, value in kwargs.items():
        if key not in params:
            if takes_any:
                out[key] = value
                continue
            raise RecipeError(f"unknown key {prefix + key!r} for {fn.__name__}()" + _closest(key, list(params), prefix))
        field = _hint_to_field(hints[key], None) if key in hints else None
        out[key] = _coerce(prefix + key, value, field) if field is not None else value
    for name, p in params.items():
        if p.default is p.empty and name not in out:
            raise RecipeError(f"missing key {prefix + name!r}: {fn.__name__}() needs it")
    return out


def _section(config: dict, name: str) -> dict:
    section = config.get(name, {})
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise RecipeError(f"{name}: expected a mapping like {{name: ...}}, got {type(section).__name__} {section!r}")
    return section


def _named(prefix: str, section: dict, table: dict[str, dict[str, Field]], default: str) -> dict:
    name = section.get("name", default)
    if name not in table:
        raise RecipeError(f"{prefix}name: unknown {prefix[:-1]} {name!r}" + _closest(str(name), list(table)))
    rest = {k: v for k, v in section.items() if k != "name"}
    return {"name": name, **_check_fields(prefix, rest, table[name], context=f" for {prefix[:-1]} {name!r}")}


def _factory_section(prefix: str, section: dict, own: dict[str, Field], fn_of: Callable[[str], Callable], supplied: set[str]) -> dict:
    mine = _check_fields(prefix, {k: v for k, v in section.items() if k in own}, own)
    factory = fn_of(mine["name"])
    rest = check_factory_kwargs(prefix, factory, {k: v for k, v in section.items() if k not in own}, supplied)
    return {**mine, **rest}


def validate(config: dict) -> dict:
    """Return the resolved recipe (defaults filled) or raise a RecipeError naming the bad key."""
    if not isinstance(config, dict):
        raise RecipeError(f"a recipe is a YAML mapping of keys, got {type(config).__name__}")
    from spikeforge.train.encode import encoders

    top = {k: v for k, v in config.items() if k not in SECTIONS}
    out = _check_fields("", top, TOP, set(SECTIONS))
    staged = config.get("stages") is not None
    for name in ("dataset", "model") + (() if staged else ("method",)):
        if "name" not in _section(config, name):
            raise RecipeError(f"missing key '{name}.name'")
    out["dataset"] = _factory_section("dataset.", _section(config, "dataset"), DATASET_KEYS, DATASETS.get, {"split"})
    out["encoder"] = _factory_section("encoder.", _section(config, "encoder"), ENCODER_KEYS, _encoder_fn(encoders()), {"x", "generator"})
    out["model"] = _factory_section("model.", _section(config, "model"), {"name": Field((str,))}, MODELS.get, set())
    out["optimizer"] = _named("optimizer.", _section(config, "optimizer"), OPTIMIZERS, "adam")
    out["schedule"] = _named("schedule.", _section(config, "schedule"), SCHEDULES, "constant")
    if staged:
        if "method" in config:
            raise RecipeError("method: a recipe with stages gives each stage its own method (stages.<stage>.method)")
        out["stages"] = _stages(config["stages"], out)
    else:
        out["method"] = _method(_section(config, "method"), "method.")
    return out


def _method(section: dict, prefix: str) -> dict:
    return _factory_section(prefix, section, {"name": Field((str,))}, METHODS.get, set())


def _stages(stages: Any, shared: dict) -> dict:
    """Each stage: its method (required), transition from the previous stage's model (not for the first), optimiser,
    schedule and the keys of STAGE_KEYS, the recipe's own values filling what a stage leaves out."""
    if not isinstance(stages, dict) or not stages:
        raise RecipeError(f"stages: expected a mapping of stage names to stages, like {{ann: {{method: ...}}, snn: {{...}}}}, got {stages!r}")
    out = {}
    for index, (name, stage) in enumerate(stages.items()):
        prefix = f"stages.{name}."
        if not isinstance(stage, dict):
            raise RecipeError(f"{prefix[:-1]}: expected a mapping with method, optimizer, schedule, epochs, got {stage!r}")
        fields = {k: Field(TOP[k].types, shared[k], TOP[k].choices, TOP[k].minimum, TOP[k].below) for k in STAGE_KEYS}
        resolved = _check_fields(prefix, {k: v for k, v in stage.items() if k not in STAGE_SECTIONS}, fields, context=" in a stage")
        if "name" not in _section(stage, "method"):
            raise RecipeError(f"missing key '{prefix}method.name'")
        resolved["method"] = _method(_section(stage, "method"), prefix + "method.")
        resolved["optimizer"] = _named(prefix + "optimizer.", _section(stage, "optimizer") or shared["optimizer"], OPTIMIZERS, "adam")
        resolved["schedule"] = _named(prefix + "schedule.", _section(stage, "schedule") or shared["schedule"], SCHEDULES, "constant")
        transition = _section(stage, "transition")
        if transition and index == 0:
            raise RecipeError(f"{prefix}transition: the first stage starts from the recipe's model; only later stages have a transition")
        if transition:
            if "name" not in transition:
                raise RecipeError(f"missing key '{prefix}transition.name'")
            resolved["transition"] = _factory_section(prefix + "transition.", transition, {"name": Field((str,))}, TRANSITIONS.get, {"model", "data"})
        out[str(name)] = resolved
    return out


def stage_configs(config: dict) -> dict[str, dict]:
    """The flat recipe of each stage (one plain recipe for a recipe without stages, under its own name)."""
    if "stages" not in config:
        return {config["name"]: config}
    shared = {k: v for k, v in config.items() if k != "stages"}
    return {name: {**shared, **stage} for name, stage in config["stages"].items()}


def _encoder_fn(table: dict[str, Callable]) -> Callable[[str], Callable]:
    def get(name: str) -> Callable:
        if name not in table:
            raise RecipeError(f"encoder.name: unknown encoder {name!r}" + _closest(name, list(table)))
        return table[name]

    return get


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """Apply `key.sub=value` strings (values parsed as YAML) to a copy of `config`."""
    if not isinstance(config, dict):
        raise RecipeError(f"a recipe is a YAML mapping of keys (name: ..., model: ...), got {type(config).__name__}")
    out = copy.deepcopy(config)
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"--set {item!r}: expected key=value, e.g. --set optimizer.lr=0.001")
        path, raw = item.split("=", 1)
        keys = path.strip().split(".")
        if not all(keys):
            raise RecipeError(f"--set {item!r}: empty key in {path!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        node = out
        for depth, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise RecipeError(f"--set {item!r}: {'.'.join(keys[:depth + 1])} is a value ({child!r}), not a section")
            node = child
        node[keys[-1]] = value
    return out


def find_recipe(spec: str) -> Path:
    """The YAML file for `spec`: an existing path, or a name found as `recipes/<name>.yaml`."""
    path = Path(spec)
    if path.is_file():
        return path
    if path.suffix in (".yaml", ".yml") or os.sep in spec:
        raise FileNotFoundError(f"recipe file {spec} does not exist")
    known = []
    for folder in RECIPE_DIRS:
        candidate = folder / f"{spec}.yaml"
        if candidate.is_file():
            return candidate
        known += [p.stem for p in folder.glob("*.yaml")]
    raise FileNotFoundError(f"no recipe named {spec!r}" + _closest(spec, sorted(set(known))))


def list_recipes() -> dict[str, Path]:
    """Every named recipe: name → file (the working directory's `recipes/` first)."""
    out: dict[str, Path] = {}
    for folder in reversed(RECIPE_DIRS):
        out.update({p.stem: p for p in sorted(folder.glob("*.yaml"))})
    return dict(sorted(out.items()))


def read_yaml(path: Path) -> dict:
    """Parse a YAML mapping; a syntax error names the file and line."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise RecipeError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    return data if data is not None else {}


def merge(base: dict, changes: dict) -> dict:
    """`base` with `changes` applied: mappings merged key by key, every other value replaced."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else copy.deepcopy(value)
    return out


def read_recipe(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A recipe file's mapping; `extends: OTHER` (a name or path) starts from OTHER's mapping and merges this one over it."""
    data = read_yaml(path)
    if not isinstance(data, dict) or "extends" not in data:
        return data
    base = find_recipe(str(data.pop("extends")))
    if base.resolve() in seen or base.resolve() == path.resolve():
        raise RecipeError(f"{path}: extends {base} extends it again (a cycle)")
    return merge(read_recipe(base, (*seen, path.resolve())), data)


def load_recipe(spec: str, overrides: list[str] = ()) -> dict:
    """Read the recipe `spec` (name or path), apply overrides and validate it."""
    path = find_recipe(spec)
    try:
        return validate(apply_overrides(read_recipe(path), list(overrides)))
    except RecipeError as err:
        raise RecipeError(f"recipe {path}: {err}") from None
