"""Hyperparameter parsing: SageMaker string forms, precedence, and one error listing every problem."""

import json

import pytest

from oculi.algorithms import ALGORITHMS, get_algorithm
from oculi.config import describe, load_recipe, parse_assignments, resolve
from oculi.errors import ConfigError

IC = get_algorithm("image-classification").hyperparameters


def test_sagemaker_string_forms_are_parsed():
    hp = resolve(IC, {"learning_rate": "0.001", "use_pretrained_model": "1", "multi_label": "True",
                      "early_stopping": "true", "image_shape": "3,224,224", "lr_scheduler_step": "10, 20",
                      "mini_batch_size": "16", "num_layers": "50", "freeze": "2", "num_classes": "", "top_k": ""})
    assert hp.learning_rate == 0.001 and isinstance(hp.learning_rate, float)
    assert hp.use_pretrained_model is True and hp.multi_label is True and hp.early_stopping is True
    assert hp.image_shape == (3, 224, 224)
    assert hp.lr_scheduler_step == [10, 20]
    assert hp.mini_batch_size == 16 and hp.num_layers == 50 and hp.freeze == 2
    assert hp.num_classes is None  # SageMaker's empty string = not set


def test_python_values_work_too():
    hp = resolve(IC, {"learning_rate": 0.01, "image_shape": (3, 64, 64), "lr_scheduler_step": [3]})
    assert hp.image_shape == (3, 64, 64) and hp.lr_scheduler_step == [3]


def test_precedence_defaults_recipe_overrides():
    hp = resolve(IC, {"epochs": "5", "mini_batch_size": "8"}, {"epochs": "7"})
    assert hp.epochs == 7 and hp.mini_batch_size == 8 and hp.optimizer == "sgd"


def test_recipe_files(tmp_path):
    js = tmp_path / "hyperparameters.json"
    js.write_text(json.dumps({"epochs": "3", "optimizer": "adam"}))
    kv = tmp_path / "recipe.txt"
    kv.write_text("# comment\nepochs=4\n\nlearning_rate = 0.5\n")
    assert load_recipe(js) == {"epochs": "3", "optimizer": "adam"}
    assert load_recipe(kv) == {"epochs": "4", "learning_rate": "0.5"}
    bad = tmp_path / "bad.json"
    bad.write_text("{ nope")
    with pytest.raises(ConfigError, match="bad.json:1"):
        load_recipe(bad)


def test_every_problem_in_one_error_with_fixes():
    with pytest.raises(ConfigError) as e:
        resolve(IC, {"mini_batch_size": "0", "lerning_rate": "0.1", "optimizer": "adamw", "epochs": "ten",
                     "learning_rate": "2", "num_layers": "19", "image_shape": "1,32,32"},
                algorithm="image-classification")
    msg = str(e.value)
    assert msg.startswith("7 problems")
    assert "`mini_batch_size` got '0'; expected an integer ≥ 1. Pass `-p mini_batch_size=32`." in msg
    assert "unknown hyperparameter `lerning_rate`. Did you mean `learning_rate`?" in msg
    assert "Did you mean 'adam'?" in msg and "sgd | adam | rmsprop | nag" in msg
    assert "`epochs` got 'ten'" in msg
    assert "`learning_rate` got '2'; expected a number > 0, ≤ 1 or auto" in msg
    assert "`num_layers` got '19'" in msg and "18, 34, 50, 101, 152" in msg
    assert "channel count must be 3" in msg


@pytest.mark.parametrize("values, fragment", [
    ({"resize": "100"}, "`resize` (100) must be ≥"),
    ({"checkpoint_frequency": "5", "epochs": "2"}, "`checkpoint_frequency` (5) must be ≤ `epochs` (2)"),
    ({"lr_scheduler": "cosine", "lr_scheduler_step": "3"}, "conflicts with `lr_scheduler_step`"),
    ({"lr_scheduler": "step"}, "needs `lr_scheduler_step`"),
    ({"architecture": "efficientnet-lite0", "num_layers": "50"}, "`num_layers` applies to architecture=resnet"),
    ({"use_pretrained_model": "1", "num_layers": "20"}, "needs an ImageNet depth"),
    ({"pretrained_weights": "w.pth"}, "`use_pretrained_model` is 0"),
    ({"multi_label": "1", "top_k": "3"}, "`top_k` applies to single-label"),
])
def test_conflicts_name_both_settings(values, fragment):
    with pytest.raises(ConfigError) as e:
        resolve(IC, values)
    assert fragment in str(e.value)


def test_parse_assignments():
    assert parse_assignments(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigError, match="Expected key=value"):
        parse_assignments(["epochs"])


@pytest.mark.parametrize("name", ALGORITHMS.names())
def test_describe_covers_every_field(name):
    model = get_algorithm(name).hyperparameters
    rows = describe(model)
    names = [r["name"] for r in rows]
    assert sorted(names) == sorted(model.model_fields) and len(names) == len(set(names))
    assert all(r["description"] and r["valid"] for r in rows)
