"""Script mode: the SageMaker environment contract seen from inside a real child script, metric regexes, a failing
script's error, the CLI, and the shipped PyTorch Lightning MNIST example end to end on ../shared/data/mnist5k as a
job that is stopped and resumed from its own checkpoints."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oculi.cli import app
from oculi.errors import ConfigError, DataError, JobError
from oculi.jobs import runner as jobs
from oculi.jobs.runner import JobSpec
from oculi.jobs.script import MetricParser, parse_metric_definitions, run_script
from oculi.jobs.store import JobStore
from tests.jobs.conftest import until

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

# A user script that records everything it was given, imports a module from its source folder, prints lines a
# metric regex reads and writes a "model".
CONTRACT_SCRIPT = """
import json, os, sys
import helper  # from the source folder: the folder must be on PYTHONPATH

seen = {"argv": sys.argv[1:], "cwd": os.getcwd(), "helper": helper.VALUE,
        "env": {k: v for k, v in os.environ.items() if k.startswith("SM_") or k == "TRAINING_JOB_NAME"}}
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "seen.json"), "w") as f:
    json.dump(seen, f)
for epoch in range(3):
    print(f"epoch {epoch} loss={1.0 / (epoch + 1):.3f} acc: {0.5 + epoch / 10}")
print("to stderr", file=sys.stderr)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as f:
    f.write("weights")
"""


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("OCULI_HOME", str(tmp_path / "home"))


def _source(tmp_path: Path, script: str, name: str = "train.py") -> Path:
    src = tmp_path / "code"
    src.mkdir(exist_ok=True)
    (src / name).write_text(textwrap.dedent(script))
    (src / "helper.py").write_text("VALUE = 42\n")
    return src


def test_script_sees_the_sagemaker_environment_contract(tmp_path):
    src = _source(tmp_path, CONTRACT_SCRIPT)
    train, validation = tmp_path / "data" / "train", tmp_path / "data" / "validation"
    train.mkdir(parents=True), validation.mkdir(parents=True)
    run = tmp_path / "run"
    lines: list[str] = []
    seen_metrics = []
    result = run_script(
        "train.py", {"train": train, "validation": validation},
        {"epochs": "3", "learning-rate": "0.01", "optimizer": "adam", "layers": [64, 32]},
        source_dir=src, model_dir=run / "model", output_dir=run / "output", log_file=run / "train.log",
        metric_definitions=["train:loss=loss=([0-9.]+)", {"Name": "train:acc", "Regex": r"acc: ([0-9.]+)"}],
        on_metric=seen_metrics.append, echo=lines.append, job_name="contract-test")

    seen = json.loads((run / "output" / "data" / "seen.json").read_text())
    env = seen["env"]
    # hyperparameters as --name value arguments, lists as JSON (never cut at commas)
    assert seen["argv"] == ["--epochs", "3", "--learning-rate", "0.01", "--optimizer", "adam", "--layers", "[64, 32]"]
    assert json.loads(env["SM_USER_ARGS"]) == seen["argv"]
    assert env["SM_MODEL_DIR"] == str((run / "model").resolve())
    assert env["SM_OUTPUT_DIR"] == str((run / "output").resolve())
    assert env["SM_OUTPUT_DATA_DIR"] == str((run / "output" / "data").resolve())
    assert json.loads(env["SM_CHANNELS"]) == ["train", "validation"]
    assert env["SM_CHANNEL_TRAIN"] == str(train.resolve())
    assert env["SM_CHANNEL_VALIDATION"] == str(validation.resolve())
    # SM_HPS decodes values like the toolkit; SM_HP_<NAME> upper-cases the name and keeps the value
    assert json.loads(env["SM_HPS"]) == {"epochs": 3, "learning-rate": 0.01, "optimizer": "adam", "layers": [64, 32]}
    assert env["SM_HP_EPOCHS"] == "3" and env["SM_HP_LEARNING-RATE"] == "0.01" and env["SM_HP_OPTIMIZER"] == "adam"
    assert json.loads(env["SM_HP_LAYERS"]) == [64, 32]
    assert int(env["SM_NUM_CPUS"]) >= 1 and int(env["SM_NUM_GPUS"]) >= 0
    assert env["SM_CURRENT_HOST"] == "algo-1" and json.loads(env["SM_HOSTS"]) == ["algo-1"]
    assert json.loads(env["SM_RESOURCE_CONFIG"])["hosts"] == ["algo-1"]
    assert set(json.loads(env["SM_INPUT_DATA_CONFIG"])) == {"train", "validation"}
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["channel_input_dirs"]["train"] == str(train.resolve())
    assert training_env["hyperparameters"]["epochs"] == 3
    assert env["TRAINING_JOB_NAME"] == "contract-test"
    config = Path(env["SM_INPUT_CONFIG_DIR"])
    assert json.loads((config / "hyperparameters.json").read_text())["layers"] == "[64, 32]"
    assert json.loads((config / "resourceconfig.json").read_text())["current_host"] == "algo-1"
    # the source folder is the working directory and importable
    assert seen["cwd"] == str(src.resolve()) and seen["helper"] == 42

    # output: streamed to echo and the log, stderr included; metrics as a time series
    assert "epoch 2 loss=0.333 acc: 0.7" in lines and "to stderr" in lines
    assert "to stderr" in (run / "train.log").read_text()
    losses = [(p.step, p.value) for p in result.metrics if p.name == "train:loss"]
    assert losses == [(0, 1.0), (1, 0.5), (2, 0.333)]
    assert result.final_metrics == {"train:loss": 0.333, "train:acc": 0.7}
    assert seen_metrics == result.metrics
    # what the script wrote to SM_MODEL_DIR is the output
    assert result.model_files == ["model.txt"] and result.exit_code == 0 and not result.notes


def test_metric_definitions_parse_and_reject_with_the_fix():
    defs = parse_metric_definitions(["validation:accuracy=val_acc=([0-9.]+)",
                                     {"Name": "train:loss", "Regex": r"loss: ([-+0-9.eE]+)"}])
    parser = MetricParser(defs)
    parser.feed("epoch 1 val_acc=0.91 loss: 1.5e-2")
    parser.feed("no numbers here; val_acc=nope")
    parser.feed("val_acc=0.93 val_acc=0.95")  # every match in a line counts
    values = [(p.name, p.step, p.value) for p in parser.points]
    assert values == [("validation:accuracy", 0, 0.91), ("train:loss", 0, 0.015), ("validation:accuracy", 1, 0.93),
                      ("validation:accuracy", 2, 0.95)]

    with pytest.raises(ConfigError, match="no capture group; put parentheses"):
        parse_metric_definitions(["loss=loss: [0-9.]+"])
    with pytest.raises(ConfigError, match="does not compile"):
        parse_metric_definitions(["loss=loss: ([0-9.]+"])
    with pytest.raises(ConfigError, match="not name=regex"):
        parse_metric_definitions(["just-a-name"])
    with pytest.raises(ConfigError, match="more than once"):
        parse_metric_definitions(["a=x(1)", "a=y(2)"])


def test_failing_script_gives_exit_code_reason_and_log_tail(tmp_path):
    src = _source(tmp_path, """
        import os, sys
        for i in range(30):
            print(f"step {i}")
        with open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w") as f:
            f.write("CUDA out of memory (pretend)")
        sys.exit(3)
    """)
    run = tmp_path / "run"
    with pytest.raises(JobError) as info:
        run_script(src / "train.py", {}, {}, model_dir=run / "model", output_dir=run / "output",
                   log_file=run / "train.log", echo=None)
    message = str(info.value)
    assert "train.py exited with code 3: CUDA out of memory (pretend)" in message
    assert "step 29" in message and "step 5" not in message  # the tail, not the whole log
    assert f"Full log: {run / 'train.log'}" in message

    crash = _source(tmp_path, "raise ValueError('bad column count in row 7')\n", name="crash.py")
    with pytest.raises(JobError, match=r"(?s)exited with code 1.*ValueError: bad column count in row 7"):
        run_script("crash.py", {}, {}, source_dir=crash, model_dir=run / "m2", output_dir=run / "o2", echo=None)


def test_missing_script_or_channel_is_a_clear_error(tmp_path):
    src = _source(tmp_path, "print('hi')\n")
    with pytest.raises(ConfigError, match="does not exist in --source-dir"):
        run_script("nope.py", {}, {}, source_dir=src, model_dir=tmp_path / "m", output_dir=tmp_path / "o")
    with pytest.raises(DataError, match="train channel .* does not exist"):
        run_script("train.py", {"train": tmp_path / "absent"}, {}, source_dir=src, model_dir=tmp_path / "m",
                   output_dir=tmp_path / "o")


def test_cli_script_mode_prints_where_the_model_went(tmp_path):
    src = _source(tmp_path, CONTRACT_SCRIPT)
    data = tmp_path / "data"
    data.mkdir()
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--entry-point", "train.py", "--source-dir", str(src), "--train", str(data),
                                 "-p", "epochs=3", "--metric-definition", "train:loss=loss=([0-9.]+)",
                                 "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert f"model (SM_MODEL_DIR): {out / 'model'}" in result.output and "model.txt" in result.output
    assert "final metrics: train:loss 0.333" in result.output
    assert (out / "model" / "model.txt").read_text() == "weights"
    assert (out / "metrics.csv").read_text().count("train:loss") == 3
    # the run is a job: recorded with its metrics, the script's output in the job's log
    job = JobStore().list()[0]
    assert (job["algorithm"], job["secondary_status"], job["model_dir"]) == ("script", "Completed", str(out / "model"))
    assert job["final_metrics"] == {"train:loss": 0.333}
    assert "to stderr" in Path(job["log_path"]).read_text()
    both = runner.invoke(app, ["train", "image-classification", "--entry-point", "train.py", "--train", str(data)])
    assert isinstance(both.exception, ConfigError) and "not both" in str(both.exception)


def test_mnist_lightning_example_as_a_job_stops_and_resumes_from_its_checkpoints(shared_data):
    mnist = shared_data / "mnist5k"
    if not (mnist / "mnist_5k.csv.gz").is_file():
        pytest.skip(f"{mnist}/mnist_5k.csv.gz is absent")
    store = JobStore()
    spec = JobSpec(entry_point="train.py", source_dir=str(ROOT / "examples" / "mnist_lightning"),
                   channels={"train": str(mnist)}, name="mnist",
                   hyperparameters={"epochs": "4", "limit-train-batches": "30", "learning-rate": "0.003"},
                   metric_definitions=["validation:accuracy=val_accuracy=([0-9.]+)", "train:loss=train_loss=([0-9.]+)"])
    jobs.submit(spec, store)
    jobs.dispatch(store)
    # stop once the first epoch is reported: SIGTERM → Lightning stops at the next step → the script checkpoints
    until(lambda: store.metrics("mnist"), timeout=300, what="the first epoch's metrics")
    jobs.stop("mnist", store)
    stopped = jobs.wait("mnist", store, timeout=120)
    assert stopped["secondary_status"] == "Stopped"
    log = Path(stopped["log_path"]).read_text()
    step = int(log.split("checkpoint written at step ")[1].split()[0])
    assert (Path(stopped["job_dir"]) / "checkpoints" / "last.ckpt").is_file() and 30 <= step < 4 * 30

    # resume (attached): the script finds last.ckpt in SM_CHECKPOINT_DIR and continues from that step
    jobs.resume("mnist", store=store, attached=True)
    done = jobs.run_attached(store.get("mnist"), store, echo=lambda _line: None)
    assert done["secondary_status"] == "Completed"
    log = Path(done["log_path"]).read_text()
    assert f"step {step}" in log.split("resumed from epoch ")[1].splitlines()[0]
    from safetensors.torch import load_file

    model = Path(done["model_dir"])
    assert load_file(str(model / "model.safetensors"))["fc2.weight"].shape == (10, 50)
    assert sorted(p.name for p in model.iterdir()) == ["model.json", "model.safetensors"]
    # 4 epochs of 30 steps of 64 digits: far above chance (0.1); measured ≈0.9
    assert done["final_metrics"]["validation:accuracy"] > 0.6, log
    accuracy = [r for r in store.metrics("mnist") if r["name"] == "validation:accuracy"]
    # one per epoch; the epoch the stop interrupted may be reported twice. A stop at an epoch's last step (30, 60,
    # 90) may land in that epoch's validation, and Lightning's resume does not run it again: that epoch has none.
    expected = range(3, 5) if step % 30 == 0 else range(4, 6)
    assert len(accuracy) in expected, (step, accuracy)
