"""``oculi algorithms describe``: every default is shown as a value a user could pass."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from oculi.cli import app


@pytest.mark.parametrize("algorithm", ["image-classification", "object-detection", "semantic-segmentation"])
def test_describe_shows_default_factory_fields_as_values(algorithm):
    result = CliRunner().invoke(app, ["algorithms", "describe", algorithm], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "Undefined" not in result.output and "Pydantic" not in result.output
    cells = [line.split("│") for line in result.output.splitlines() if line.count("│") >= 4]
    row = next(c for c in cells if c[1].strip() == "lr_scheduler_step")
    assert row[2].strip() == "none"  # an empty list of epochs: no step schedule


def test_config_describe_and_error_example_for_an_empty_list_default():
    from oculi.algorithms import get_algorithm
    from oculi.config import describe, resolve
    from oculi.errors import ConfigError

    hp = get_algorithm("image-classification").hyperparameters
    rows = {r["name"]: r for r in describe(hp)}
    assert rows["lr_scheduler_step"]["default"] == "none"
    assert rows["learning_rate"]["default"] not in ("", "none")
    with pytest.raises(ConfigError) as e:
        resolve(hp, None, {"lr_scheduler_step": "ten"}, algorithm="image-classification")
    assert "Undefined" not in str(e.value)
