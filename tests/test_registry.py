"""The generic registry: register, get, closest names on a miss."""

import pytest

from oculi.errors import RegistryError
from oculi.registry import Registry


def test_register_get_and_list():
    reg: Registry[int] = Registry("thing", list_command="oculi things list")
    reg.register("alpha", 1)
    reg.decorator("beta")(2)
    assert reg.get("alpha") == 1 and reg.get("beta") == 2
    assert reg.names() == ["alpha", "beta"] and "alpha" in reg and len(reg) == 2


def test_unknown_name_lists_closest_and_how_to_see_all():
    reg: Registry[int] = Registry("algorithm", list_command="oculi algorithms list")
    reg.register("image-classification", 1)
    reg.register("object-detection", 2)
    with pytest.raises(RegistryError) as e:
        reg.get("image-clasification")
    msg = str(e.value)
    assert "Did you mean 'image-classification'" in msg
    assert "oculi algorithms list" in msg and "object-detection" in msg


def test_double_registration_is_a_programming_error():
    reg: Registry[int] = Registry("thing")
    reg.register("a", 1)
    with pytest.raises(ValueError):
        reg.register("a", 2)


# The built-ins, one per task. A new algorithm registers beside them; the test checks every registered entry.
BUILTINS = {"image-classification": "classification", "object-detection": "detection",
            "semantic-segmentation": "segmentation"}


def test_every_builtin_algorithm_is_registered_under_its_own_name():
    """All three built-ins are in the registry (not only the first one registered), each under the name it
    carries, with its own task; every registered entry is a working Algorithm: ``get_algorithm`` returns it, its
    hyperparameter defaults validate, and its objective metric is a validation metric."""
    from oculi.algorithms import ALGORITHMS, Algorithm, get_algorithm
    from oculi.config import resolve

    assert set(BUILTINS) <= set(ALGORITHMS.names()), ALGORITHMS.names()
    assert {name: get_algorithm(name).task for name in BUILTINS} == BUILTINS
    for name in ALGORITHMS:
        algorithm = ALGORITHMS.get(name)
        assert isinstance(algorithm, Algorithm) and algorithm.name == name and get_algorithm(name) is algorithm
        assert resolve(algorithm.hyperparameters, algorithm=name) is not None  # defaults need no value
        assert algorithm.metric.startswith("validation:"), (name, algorithm.metric)
