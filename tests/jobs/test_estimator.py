"""The SageMaker-style SDK: Estimator.fit (wait and no-wait), model_data, attach, describe."""

from __future__ import annotations

import oculi
from oculi.jobs.store import JobStore
from tests.helpers import TINY


def test_estimator_fit_attach_and_model_data(mini_data, capsys):
    est = oculi.Estimator("image-classification", hyperparameters=TINY)
    est.fit({k: str(v) for k, v in mini_data.items()}, wait=False)
    name = est.latest_training_job
    assert name.startswith("image-classification-")
    again = oculi.Estimator.attach(name)
    assert again.hyperparameters == TINY and again.algorithm == "image-classification"
    job = again.wait(logs=True)
    assert job["secondary_status"] == "Completed"
    assert "epoch 1/1" in capsys.readouterr().out
    assert (est.model_data / "model.json").exists()
    model = oculi.load_model(est.model_data)
    assert model is not None
    assert est.describe()["TrainingJobStatus"] == "Completed"
    assert [j["name"] for j in JobStore().list()] == [name]
