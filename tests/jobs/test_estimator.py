"""The SageMaker-style SDK: Estimator.fit (wait and no-wait), model_data, attach, describe, deploy."""

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
    image = next(p for p in mini_data["validation"].rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    with est.deploy() as endpoint:  # a real local endpoint, answering what the in-process model predicts
        served = endpoint.predict(image)
    local = model.predict(image).sagemaker()["prediction"]
    assert len(served["prediction"]) == len(local)
    assert max(abs(a - b) for a, b in zip(served["prediction"], local, strict=True)) < 1e-3


def test_estimator_script_mode_fit_attach_and_model_data(tmp_path, capsys):
    src = tmp_path / "code"
    src.mkdir()
    (src / "train.py").write_text(
        "import argparse, os\n"
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('--epochs', type=int)\n"
        "p.add_argument('--learning-rate', type=float)\n"
        "a = p.parse_args()\n"
        "for e in range(1, a.epochs + 1):\n"
        "    print(f'epoch {e} loss={a.learning_rate / e}')\n"
        "open(os.path.join(os.environ['SM_MODEL_DIR'], 'model.txt'), 'w').write(os.environ['SM_CHANNEL_TRAIN'])\n")
    data = tmp_path / "data"
    data.mkdir()
    est = oculi.Estimator(entry_point="train.py", source_dir=str(src), hyperparameters={"epochs": 2,
                                                                                      "learning-rate": 0.5},
                          metric_definitions=[{"Name": "train:loss", "Regex": "loss=([0-9.]+)"}])
    est.fit({"train": str(data)})  # waits, streaming the log
    assert "epoch 2 loss=0.25" in capsys.readouterr().out
    name = est.latest_training_job
    assert name.startswith("train-")
    assert (est.model_data / "model.txt").read_text() == str(data)
    described = est.describe()
    assert described["TrainingJobStatus"] == "Completed"
    assert described["FinalMetricDataList"][0]["MetricName"] == "train:loss"
    assert described["FinalMetricDataList"][0]["Value"] == 0.25
    again = oculi.Estimator.attach(name)
    assert again.entry_point == str(src / "train.py") and again.model_data == est.model_data
    assert again.hyperparameters == {"epochs": "2", "learning-rate": "0.5"}
