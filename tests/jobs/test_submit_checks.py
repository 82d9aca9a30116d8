"""Built-in training jobs are checked when submitted, as script jobs are: a hyperparameter typo, an unknown
algorithm, a missing channel or ``--init-model`` is an error at once (one message listing every hyperparameter
problem) and no job — so no Failed job — is recorded. Through the Python API, the CLI and the control plane."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from oculi.errors import ArtifactError, ConfigError, DataError
from oculi.jobs import runner
from tests.jobs.conftest import spec
from tests.jobs.test_control_api import server  # noqa: F401 - the real control-plane server fixture


def test_every_hyperparameter_problem_is_listed_at_submit_and_nothing_is_recorded(store, mini_data):
    with pytest.raises(ConfigError) as error:
        runner.submit(spec(mini_data, learning_rat="0.1", epochs="0"), store)
    message = str(error.value)
    assert message.startswith("2 problems with the hyperparameters"), message
    assert "learning_rat" in message and "learning_rate" in message  # the typo and the closest name
    assert "epochs" in message
    assert store.list() == [] and store.count_active() == 0


def test_unknown_algorithm_missing_channel_and_bundle_are_refused_at_submit(store, mini_data, tmp_path):
    unknown = spec(mini_data)
    unknown.algorithm = "image-clasification"
    with pytest.raises(ConfigError, match="image-classification"):
        runner.submit(unknown, store)
    with pytest.raises(DataError, match=r"The validation channel .*nowhere does not exist.*--validation"):
        runner.submit(spec({"train": mini_data["train"], "validation": tmp_path / "nowhere"}), store)
    with pytest.raises(DataError, match=r"--channel train_annotation=PATH"):
        runner.submit(spec({**mini_data, "train_annotation": tmp_path / "nowhere"}), store)
    incremental = spec(mini_data)
    incremental.init_model = str(tmp_path / "no-bundle")
    with pytest.raises(ArtifactError):
        runner.submit(incremental, store)
    uneven = spec(mini_data, mini_batch_size="3")  # 3 images per step cannot split over 2 processes
    uneven.distributed = {"devices": 2}
    with pytest.raises(ConfigError, match="pass -p mini_batch_size=4"):
        runner.submit(uneven, store)
    assert store.list() == []
    job = runner.submit(spec(mini_data), store)  # a good spec is still recorded
    assert [j["name"] for j in store.list()] == [job["name"]]


def test_the_cli_refuses_a_detached_job_with_a_typo(mini_data, oculi_home):
    def oculi(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", "from oculi.cli import main; main()", *args],
                              capture_output=True, text=True, timeout=300)

    done = oculi("train", "image-classification", "--train", str(mini_data["train"]), "-p", "learning_rat=0.1",
                 "--detach")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "learning_rat" in done.stderr and "learning_rate" in done.stderr
    listed = oculi("jobs", "list")
    assert listed.returncode == 0 and "image-classification-" not in listed.stdout, listed.stdout


def test_the_control_plane_answers_400_and_records_nothing(server, mini_data):  # noqa: F811 - fixture
    base, headers = server
    body = {"AlgorithmName": "image-classification", "HyperParameters": {"learning_rat": "0.1", "epochs": "0"},
            "InputDataConfig": {k: str(v) for k, v in mini_data.items()}}
    answer = httpx.post(f"{base}/api/training-jobs", json=body, headers=headers, timeout=120)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "ConfigError" and "learning_rat" in answer.json()["message"]
    assert httpx.get(f"{base}/api/training-jobs", headers=headers, timeout=30).json()["TrainingJobSummaries"] == []
