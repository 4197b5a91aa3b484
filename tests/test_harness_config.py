"""Recipe loading: validation errors name the key and the closest valid one; --set overrides; recipe lookup."""

from __future__ import annotations

import pytest
import yaml

from spikeforge.train.config import RecipeError, apply_overrides, find_recipe, load_recipe, validate
from test_harness_tiny import tiny_recipe


def _raw(tmp_path) -> dict:
    return yaml.safe_load(tiny_recipe(tmp_path).read_text())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r.update(epocs=3), "unknown key 'epocs'; did you mean 'epochs'?"),
        (lambda r: r.update(optimiser={"name": "adam"}), "unknown key 'optimiser'; did you mean 'optimizer'?"),
        (lambda r: r["optimizer"].update(lrr=0.1), "unknown key 'optimizer.lrr' for optimizer 'adam'; did you mean 'optimizer.lr'?"),
        (lambda r: r["model"].update(hiden=[3]), "unknown key 'model.hiden' for demo_lif(); did you mean 'model.hidden'?"),
        (lambda r: r["method"].update(los="mse"), "unknown key 'method.los' for surrogate_bptt(); did you mean 'method.loss'?"),
        (lambda r: r["dataset"].update(rot="/x"), "unknown key 'dataset.rot' for fashion_mnist(); did you mean 'dataset.root'?"),
        (lambda r: r.update(epochs="many"), "epochs: expected int, got str 'many'"),
        (lambda r: r.update(batch_size=0), "batch_size: must be >= 1, got 0"),
        (lambda r: r["optimizer"].update(lr="fast"), "optimizer.lr: expected float, got str 'fast'"),
        (lambda r: r["model"].update(classes=2.5), "model.classes: expected int, got float 2.5"),
        (lambda r: r["optimizer"].update(name="adamw"), "optimizer.name: unknown optimizer 'adamw'; did you mean 'adam'?"),
        (lambda r: r["schedule"].update(name="cosine"), "unknown schedule 'cosine'; did you mean 'cosine_restarts'?"),
        (lambda r: r.update(sampler="weigthed"), "sampler: 'weigthed' is not allowed; did you mean 'weighted'?"),
        (lambda r: r["encoder"].update(name="rates"), "encoder.name: unknown encoder 'rates'; did you mean 'rate'?"),
        (lambda r: r["model"].update(name="demo_lf"), "unknown model 'demo_lf'; did you mean 'demo_lif'?"),
        (lambda r: r.pop("name"), "missing key 'name'"),
        (lambda r: r["schedule"].update(name="constant"), "unknown key 'schedule.gamma' for schedule 'constant'"),
        (lambda r: r.update(model=[1]), "model: expected a mapping"),
    ],
)
def test_bad_recipes_fail_with_one_line_naming_the_key(tmp_path, mutate, message):
    recipe = _raw(tmp_path)
    mutate(recipe)
    with pytest.raises((RecipeError, KeyError)) as err:
        validate(recipe)
    text = err.value.args[0]
    assert message in text and "\n" not in text


def test_yaml_exponent_without_dot_is_read_as_float(tmp_path):
    recipe = _raw(tmp_path)
    recipe["optimizer"]["lr"] = "1e-3"  # YAML 1.1 reads 1e-3 as a string
    assert validate(recipe)["optimizer"]["lr"] == pytest.approx(1e-3)


def test_list_elements_are_read_as_their_annotated_type(tmp_path):
    """`--set method.reg_weight=[1e-4,2]`: YAML 1.1 reads 1e-4 as a string; a list[float] key gets floats, a bad element is named."""
    config = validate(apply_overrides(_raw(tmp_path), ["method.reg_weight=[1e-4, 2]", "model.hidden=[8, 4]"]))
    assert config["method"]["reg_weight"] == [pytest.approx(1e-4), 2.0] and all(type(v) is float for v in config["method"]["reg_weight"])
    assert config["model"]["hidden"] == [8, 4]
    with pytest.raises(RecipeError, match=r"^method\.reg_weight\[1\]: expected float, got str 'high'$"):
        validate(apply_overrides(_raw(tmp_path), ["method.reg_weight=[1e-4, high]"]))
    with pytest.raises(RecipeError, match=r"^model\.hidden\[0\]: expected int, got float 8\.5$"):
        validate(apply_overrides(_raw(tmp_path), ["model.hidden=[8.5]"]))


def test_set_overrides_nested_keys_with_yaml_values(tmp_path):
    recipe = apply_overrides(_raw(tmp_path), ["optimizer.lr=0.5", "model.hidden=[8, 4]", "grad_clip=5", "schedule.gamma=0.5"])
    config = validate(recipe)
    assert config["optimizer"]["lr"] == 0.5 and config["model"]["hidden"] == [8, 4] and config["grad_clip"] == 5.0
    assert config["schedule"] == {"name": "warmup_exp", "warmup_epochs": 0.5, "gamma": 0.5}


@pytest.mark.parametrize(
    "item, message",
    [("optimizer.lr", "expected key=value"), ("epochs.x=3", "epochs is a value (2), not a section"), ("a..b=1", "empty key")],
)
def test_bad_set_items_are_explained(tmp_path, item, message):
    with pytest.raises(RecipeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        apply_overrides(_raw(tmp_path), [item])


def test_set_typo_is_caught_by_validation(tmp_path):
    with pytest.raises(RecipeError, match="unknown key 'optimizer.weight_decy' for optimizer 'adam'; did you mean 'optimizer.weight_decay'"):
        load_recipe(str(tiny_recipe(tmp_path)), ["optimizer.weight_decy=0.1"])


def test_recipes_are_found_by_name_or_path(tmp_path):
    assert find_recipe("default").name == "default.yaml"
    path = tiny_recipe(tmp_path)
    assert find_recipe(str(path)) == path
    with pytest.raises(FileNotFoundError, match="no recipe named 'defualt'; did you mean 'default'"):
        find_recipe("defualt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_recipe(str(tmp_path / "nope.yaml"))


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nmodel: {name: demo_lif\n")
    with pytest.raises(RecipeError, match=r"broken.yaml line \d+: not valid YAML"):
        load_recipe(str(path))


def test_every_shipped_recipe_of_the_harness_validates():
    config = load_recipe("default")
    assert config["dataset"]["name"] == "fashion_mnist" and config["method"]["name"] == "surrogate_bptt"
