"""CLI surfaces that read a trained bundle or the registry: predict (SageMaker JSON forms), algorithms."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from oculi.cli import app
from oculi.engine.training import train
from tests.helpers import TINY

runner = CliRunner()


@pytest.fixture(scope="module")
def bundle(tiny_split, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "model"
    train("image-classification", tiny_split, {**TINY, "epochs": "2"}, output=out, progress=False,
          echo=lambda *_: None)
    return out


def test_predict_table_json_and_verbose(bundle, tiny_split):
    image = str(sorted((tiny_split["validation"] / "square").glob("*.png"))[0])
    table = runner.invoke(app, ["predict", str(bundle), image, "--top-k", "2"])
    assert table.exit_code == 0 and "square" in table.output
    plain = runner.invoke(app, ["predict", str(bundle), image, "--json"])
    body = json.loads(plain.output)
    assert list(body) == ["prediction"] and len(body["prediction"]) == 3
    assert abs(sum(body["prediction"]) - 1) < 1e-4
    verbose = json.loads(runner.invoke(app, ["predict", str(bundle), image, "--json", "--verbose"]).output)
    assert verbose["labels"] == ["circle", "square", "stripes"]
    assert verbose["predicted_label"] == verbose["labels"][max(range(3), key=verbose["probabilities"].__getitem__)]


def test_predict_on_a_broken_image_is_a_clear_error(bundle, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    result = subprocess.run([sys.executable, "-c", "from oculi.cli import main; main()", "predict", str(bundle),
                             str(bad)], capture_output=True, text=True)
    assert result.returncode == 3
    assert "bad.jpg" in result.stderr and "Traceback" not in result.stderr


def test_algorithms_list_and_describe():
    listed = runner.invoke(app, ["algorithms", "list"])
    assert listed.exit_code == 0 and "image-classification" in listed.output
    described = runner.invoke(app, ["algorithms", "describe", "image-classification"], env={"COLUMNS": "200"})
    assert described.exit_code == 0
    for name in ("num_layers", "augmentation_type", "use_weighted_loss", "early_stopping_tolerance", "freeze"):
        assert name in described.output
    unknown = runner.invoke(app, ["algorithms", "describe", "image-clasification"])
    assert unknown.exit_code != 0 and "Did you mean 'image-classification'" in str(unknown.exception)


def test_float16_on_cpu_is_refused_with_the_fix(tiny_split, tmp_path):
    import torch

    from oculi.errors import ConfigError

    if torch.cuda.is_available():
        pytest.skip("float16 is valid with a GPU")
    with pytest.raises(ConfigError, match="precision_dtype=bfloat16"):
        train("image-classification", tiny_split, {**TINY, "precision_dtype": "float16"}, output=tmp_path / "m",
              progress=False, echo=lambda *_: None)


def test_import_oculi_is_light():
    code = "import sys, oculi; print(sorted(m for m in ('torch', 'lightning', 'PIL') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _oculi(*args: str) -> subprocess.CompletedProcess:
    """Run the real console entry point in a subprocess."""
    return subprocess.run([sys.executable, "-c", "from oculi.cli import main; main()", *args],
                          capture_output=True, text=True)


def test_exit_codes_of_the_real_entry_point(tmp_path, tiny_split):
    assert _oculi("data", "check", str(tiny_split["train"])).returncode == 0
    bad = tmp_path / "data"
    (bad / "a").mkdir(parents=True)
    (bad / "b").mkdir()
    (bad / "a" / "x.png").write_bytes(b"not a png")
    check = _oculi("data", "check", str(bad))
    assert check.returncode == 1 and "x.png" in check.stdout + check.stderr
    assert _oculi("train", "image-classification", "--train", str(bad), "-p", "epochs=0").returncode == 2
    assert _oculi("no-such-command").returncode == 2
