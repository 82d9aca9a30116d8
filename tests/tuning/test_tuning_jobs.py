"""Tuning jobs end to end on a tiny model: every trial is a real training job run by the local queue's workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oculi.cli import app
from oculi.jobs import runner
from oculi.jobs.store import JobStore
from oculi.tuning import tuner
from oculi.tuning.config import TuningConfig
from oculi.tuning.ranges import CategoricalParameter
from tests.jobs.conftest import story, until
from tests.tuning.conftest import starts, training


@pytest.fixture(scope="module")
def grid_home(tiny_split, tmp_path_factory) -> tuple[Path, str]:
    """A grid search over three optimizers run with `oculi tune` in its own OCULI_HOME: (home, output)."""
    home = tmp_path_factory.mktemp("tune-home")
    saved = {k: os.environ.get(k) for k in ("OCULI_HOME", "OCULI_DATABASE_URL", "OCULI_MAX_PARALLEL_JOBS")}
    os.environ["OCULI_HOME"] = str(home)
    os.environ["OCULI_MAX_PARALLEL_JOBS"] = "2"
    os.environ.pop("OCULI_DATABASE_URL", None)
    args = ["tune", "image-classification", "--train", str(tiny_split["train"]), "--validation",
            str(tiny_split["validation"]), "--objective", "validation:accuracy", "--strategy", "grid",
            "--range", "optimizer=categorical:sgd,adam,nag", "--range", "learning_rate=categorical:0.05",
            "--max-parallel-jobs", "2", "--random-seed", "3", "--name", "grid-1",
            *sum((["-p", f"{k}={v}"] for k, v in {"epochs": "1", "image_shape": "3,32,32", "num_layers": "20",
                                                   "mini_batch_size": "8", "num_workers": "0"}.items()), [])]
    try:
        result = CliRunner().invoke(app, args, catch_exceptions=False)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert result.exit_code == 0, result.output
    return home, result.output


def test_grid_visits_every_combination_once_and_reports_the_best(grid_home, tiny_split, monkeypatch,
                                                                 tmp_path) -> None:
    home, output = grid_home
    monkeypatch.setenv("OCULI_HOME", str(home))
    store = JobStore()
    job = store.get("grid-1")
    assert job["kind"] == "tuning" and job["status"] == "Completed", story(store, "grid-1")
    trials = [store.get(f"grid-1-{i:03d}") for i in range(1, 4)]
    assert store.find("grid-1-004") is None
    combos = {(t["spec"]["hyperparameters"]["optimizer"], t["spec"]["hyperparameters"]["learning_rate"])
              for t in trials}
    assert combos == {(o, "0.05") for o in ("sgd", "adam", "nag")}
    assert all(t["spec"]["tags"]["TuningJob"] == "grid-1" and starts(store, t["name"]) == 1 for t in trials)
    # progress lines and the final table
    assert output.count("submitted:") == 3 and "[3/3]" in output
    values = {t["name"]: t["final_metrics"]["validation:accuracy"] for t in trials}
    best = max(values, key=lambda n: (values[n], -int(n[-3:])))
    assert f"best: {best} validation:accuracy {values[best]:.4f}" in output

    described = json.loads(CliRunner().invoke(app, ["jobs", "describe", "grid-1"]).output)
    assert described["BestTrainingJob"]["TrainingJobName"] == best
    assert described["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == values[best]
    assert described["TrainingJobStatusCounters"]["Completed"] == 3
    assert described["ObjectiveStatusCounters"] == {"Succeeded": 3, "Pending": 0, "Failed": 0}
    assert described["HyperParameterTuningEndReason"] == "MaxNumberOfTrainingJobsReached"
    assert described["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 3
    listed = CliRunner().invoke(app, ["jobs", "list"]).output
    assert "grid-1 " in listed and "grid-1-003" in listed

    plot = tmp_path / "objective.png"
    shown = CliRunner().invoke(app, ["jobs", "metrics", "grid-1", "--plot", str(plot)])
    assert shown.exit_code == 0 and "best_objective" in shown.output and plot.stat().st_size > 0
    assert "grid-1-004" not in listed

    # the SDK sees the same job
    import oculi

    tuner_ = oculi.HyperparameterTuner.attach("grid-1")
    assert tuner_.best_training_job() == best
    frame = tuner_.analytics().dataframe()
    assert sorted(frame["TrainingJobName"]) == [t["name"] for t in trials]
    assert frame.set_index("TrainingJobName")["FinalObjectiveValue"].to_dict() == values
    with tuner_.deploy() as predictor:
        out = predictor.predict(next(tiny_split["validation"].glob("*/*.png")).read_bytes(),
                                content_type="image/png")
    assert out is not None
    store.dispose()


def test_console_tuning_pages(grid_home, page, monkeypatch) -> None:
    from tests.console.conftest import start_console, stop_console

    home, _ = grid_home
    monkeypatch.setenv("OCULI_HOME", str(home))
    store = JobStore()
    best = json.loads(CliRunner().invoke(app, ["jobs", "describe", "grid-1"]).output)["BestTrainingJob"]
    served = start_console(home)
    shots = os.environ.get("OCULI_TEST_SCREENSHOTS")
    try:
        p = page.page
        p.goto(f"{served.url}/tuning")
        assert p.locator("#tuning-jobs tbody tr").count() == 1
        p.click("text=grid-1")
        p.wait_for_url("**/tuning/grid-1")
        rows = p.locator("#trials tbody tr")
        assert rows.count() == 3
        assert p.locator("#trials tbody tr.best td.name").inner_text() == best["TrainingJobName"]
        assert p.locator("#charts svg").count() >= 1 and "best so far" in p.locator("#charts").inner_text()
        # parallel coordinates: an axis per tuned hyperparameter (learning_rate has one value) and the objective,
        # a polyline per finished trial, the best one marked
        axes = p.locator("#parallel svg .pc-axis")
        assert [axes.nth(i).get_attribute("data-name") for i in range(axes.count())] == [
            "optimizer", "validation:accuracy"]
        assert p.locator("#parallel .pc-axis[data-name=optimizer] text.pc-tick").all_text_contents() == [
            "sgd", "adam", "nag"]
        assert p.locator("#parallel svg polyline.trial").count() == 3
        assert p.locator("#parallel svg polyline.faint").count() == 0
        assert p.locator("#parallel svg polyline.best").get_attribute("data-job") == best["TrainingJobName"]
        assert "best (" in p.locator("#parallel-legend").inner_text()
        assert p.locator("nav >> text=Tuning").count() == 1
        page.check("tuning job page")
        p.click(f"#trials a:text('{best['TrainingJobName']}')")
        p.wait_for_url(f"**/jobs/{best['TrainingJobName']}")
        assert p.locator("#tuning-link").inner_text().startswith("Trial ")
        if shots:
            p.screenshot(path=f"{shots}/tuning-1280.png", full_page=True)
            p.set_viewport_size({"width": 390, "height": 800})
            p.screenshot(path=f"{shots}/tuning-390.png", full_page=True)
            p.goto(f"{served.url}/tuning")
            p.screenshot(path=f"{shots}/tuning-list-390.png", full_page=True)
    finally:
        stop_console(served)
        store.dispose()


def test_early_stopping_stops_a_clearly_worse_trial(tiny_split, store) -> None:
    import optuna

    from oculi.tuning.study import storage

    cfg = TuningConfig("validation:accuracy", {"learning_rate": CategoricalParameter(["0.05", "1e-07"])},
                       strategy="random", max_jobs=2, early_stopping="auto", early_stopping_min_trials=1)
    job = tuner.create(cfg, training(tiny_split, epochs="3", learning_rate=None), "early-1", store)
    study = optuna.load_study(study_name="early-1", storage=storage(job["spec"]["storage"], job["job_dir"]))
    study.enqueue_trial({"learning_rate": "0.05"})   # a good trial first, then a hopeless one
    study.enqueue_trial({"learning_rate": "1e-07"})
    lines: list[str] = []
    ended = tuner.run("early-1", store, echo=lines.append)
    assert ended["status"] == "Completed"
    good, bad = store.get("early-1-001"), store.get("early-1-002")
    assert good["secondary_status"] == "Completed", story(store, good["name"])
    assert bad["secondary_status"] == "Stopped", story(store, bad["name"])
    stopping = [t["message"] for t in store.transitions(bad["name"]) if t["secondary_status"] == "Stopping"]
    assert stopping and stopping[0].startswith("early stopping: objective") and "median" in stopping[0]
    assert bad["checkpoint"]["epoch"] < good["checkpoint"]["epoch"]
    described = tuner_describe("early-1", store)
    assert described["TrainingJobStatusCounters"]["Stopped"] == 1
    assert described["BestTrainingJob"]["TrainingJobName"] == "early-1-001"
    assert any("early-1-002 Stopped: early stopping" in line for line in lines)


def tuner_describe(name: str, store: JobStore) -> dict:
    from oculi.tuning.report import describe

    return describe(store.get(name), store)


def test_kill_9_of_the_tuner_then_resume_loses_and_repeats_nothing(tiny_split, store, monkeypatch) -> None:
    cmd = [sys.executable, "-m", "oculi.cli", "tune", "image-classification", "--train", str(tiny_split["train"]),
           "--validation", str(tiny_split["validation"]), "--objective", "validation:accuracy",
           "--range", "learning_rate=continuous:0.01:0.1:log", "--strategy", "bayesian", "--random-seed", "1",
           "--max-jobs", "2", "--max-parallel-jobs", "2", "--name", "crash-1", "-p", "epochs=1",
           "-p", "image_shape=3,32,32", "-p", "num_layers=20", "-p", "mini_batch_size=8", "-p", "num_workers=0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "OCULI_MAX_PARALLEL_JOBS": "2"})
    try:
        until(lambda: (store.find("crash-1-001") or {}).get("secondary_status") in ("Training", "Completed"),
              timeout=240, what="the first trial to train")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    runner.dispatch(store)  # finds the dead tuner
    assert store.get("crash-1")["secondary_status"] == "Failed"
    assert store.find("crash-1-002") is None or store.get("crash-1-002")["secondary_status"] != "Failed"

    monkeypatch.setenv("OCULI_MAX_PARALLEL_JOBS", "2")
    result = CliRunner().invoke(app, ["jobs", "resume", "crash-1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    job = store.get("crash-1")
    assert job["status"] == "Completed" and job["attempts"] == 1
    names = [f"crash-1-{i:03d}" for i in range(1, 3)]
    assert store.find("crash-1-003") is None
    for name in names:
        trial = store.get(name)
        assert trial["status"] == "Completed" and starts(store, name) == 1 and trial["attempts"] == 0, story(store,
                                                                                                            name)
    described = tuner_describe("crash-1", store)
    assert described["ObjectiveStatusCounters"]["Succeeded"] == 2
    assert len({store.get(n)["spec"]["hyperparameters"]["learning_rate"] for n in names}) == 2


def test_two_workers_on_postgresql_never_run_a_trial_twice(postgres_url, tiny_split, monkeypatch) -> None:
    monkeypatch.setenv("OCULI_DATABASE_URL", postgres_url)
    monkeypatch.setenv("OCULI_MAX_PARALLEL_JOBS", "2")
    store = JobStore()
    cfg = TuningConfig("validation:accuracy", {"learning_rate": CategoricalParameter(["0.02", "0.05", "0.1"])},
                       strategy="grid", max_parallel_jobs=2, random_seed=4)
    job = tuner.create(cfg, training(tiny_split, epochs="1", learning_rate=None), f"pg-{int(time.time())}", store)
    name = job["name"]
    assert job["spec"]["storage"] == "database"
    owner = tuner.start_detached(name, store)
    worker = subprocess.Popen([sys.executable, "-m", "oculi.cli", "tune", "worker", name],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = worker.communicate(timeout=400)
        until(lambda: store.get(name)["status"] == "Completed", timeout=240, what="the tuning job to complete",
              explain=lambda: story(store, name))
    finally:
        for pid in (owner, worker.pid):
            with __import__("contextlib").suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert worker.returncode == 0, out
    trials = [j for j in store.list() if (j["spec"].get("tags") or {}).get("TuningJob") == name]
    assert sorted(t["name"] for t in trials) == [f"{name}-{i:03d}" for i in range(1, 4)]
    assert all(starts(store, t["name"]) == 1 and t["attempts"] == 0 for t in trials)
    assert sorted(t["spec"]["hyperparameters"]["learning_rate"] for t in trials) == ["0.02", "0.05", "0.1"]
    store.dispose()


def test_the_sdk_tunes_a_script_on_its_metric_definition(tiny_split, tmp_path, monkeypatch) -> None:
    import oculi

    monkeypatch.setenv("OCULI_MAX_PARALLEL_JOBS", "2")
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("import json, os\nx = float(json.loads(os.environ['SM_HPS'])['x'])\n"
                                  "print(f'score={1 - (x - 0.3) ** 2:.6f}')\n")
    est = oculi.Estimator(entry_point="train.py", source_dir=str(src),
                          metric_definitions=[{"Name": "validation:score", "Regex": "score=([0-9.]+)"}])
    tuner_ = oculi.HyperparameterTuner(est, "validation:score", {"x": oculi.ContinuousParameter(0, 1)},
                                       strategy="Random", random_seed=0, max_jobs=2, max_parallel_jobs=2)
    tuner_.fit({"train": str(tiny_split["train"])}, job_name="script-t")
    store = JobStore()
    scores = {}
    for name in ("script-t-001", "script-t-002"):
        job = store.get(name)
        x = float(job["spec"]["hyperparameters"]["x"])
        assert job["status"] == "Completed"
        assert abs(job["final_metrics"]["validation:score"] - (1 - (x - 0.3) ** 2)) < 1e-5  # recomputable
        scores[name] = job["final_metrics"]["validation:score"]
    assert tuner_.best_training_job() == max(scores, key=scores.get)
    assert tuner_.describe()["HyperParameterTuningJobStatus"] == "Completed"
    store.dispose()


def test_hyperband_trials_report_each_epoch_to_the_study(tiny_split, store) -> None:
    import optuna

    from oculi.tuning.ranges import ContinuousParameter
    from oculi.tuning.study import storage

    cfg = TuningConfig("validation:accuracy", {"learning_rate": ContinuousParameter(0.01, 0.1, "Logarithmic")},
                       strategy="hyperband", max_jobs=2, random_seed=0)
    job = tuner.create(cfg, training(tiny_split, epochs="2", learning_rate=None), "hb-1", store)
    assert tuner.run("hb-1", store)["status"] == "Completed"
    study = optuna.load_study(study_name="hb-1", storage=storage(job["spec"]["storage"], job["job_dir"]))
    assert len(study.trials) == 2
    for t in study.trials:
        name = f"hb-1-{t.number + 1:03d}"
        recorded = {r["epoch"]: r["value"] for r in store.metrics(name) if r["name"] == "validation:accuracy"}
        assert t.intermediate_values and t.intermediate_values == {e: recorded[e] for e in t.intermediate_values}
        assert store.get(name)["status"] in ("Completed", "Stopped")


def test_warm_start_reuses_the_parent_trials(grid_home, tiny_split, monkeypatch) -> None:
    import optuna

    from oculi.errors import ConfigError
    from oculi.tuning.report import describe
    from oculi.tuning.study import storage

    home, _ = grid_home
    monkeypatch.setenv("OCULI_HOME", str(home))
    store = JobStore()
    static = {"epochs": "1", "image_shape": "3,32,32", "num_layers": "20", "mini_batch_size": "8",
              "num_workers": "0"}
    ranges = {"optimizer": CategoricalParameter(["sgd", "adam", "nag"]),
              "learning_rate": CategoricalParameter(["0.05"])}
    spec = training(tiny_split)
    spec.hyperparameters = dict(static)
    cfg = TuningConfig("validation:accuracy", dict(ranges), strategy="random", max_jobs=1,
                       warm_start_parents=["grid-1"])
    job = tuner.create(cfg, spec, "warm-1", store)
    assert job["spec"]["warm_trials"] == 3
    study = optuna.load_study(study_name="warm-1", storage=storage(job["spec"]["storage"], job["job_dir"]))
    parent = {store.get(f"grid-1-{i:03d}")["spec"]["hyperparameters"]["optimizer"]:
              store.get(f"grid-1-{i:03d}")["final_metrics"]["validation:accuracy"] for i in range(1, 4)}
    assert {t.params["optimizer"]: t.value for t in study.trials} == parent
    assert describe(store.get("warm-1"), store)["WarmStartConfig"]["ParentHyperParameterTuningJobs"] == [
        {"HyperParameterTuningJobName": "grid-1"}]
    other = TuningConfig("validation:accuracy", {"optimizer": CategoricalParameter(["sgd", "adam"])},
                         strategy="random", max_jobs=1, warm_start_parents=["grid-1"])
    with pytest.raises(ConfigError, match="use --warm-start-type transfer"):
        tuner.create(other, spec, "warm-2", store)
    other.warm_start_type = "TransferLearning"
    job = tuner.create(other, spec, "warm-3", store)
    assert job["spec"]["warm_trials"] == 0  # the parent's trials have a learning_rate this search does not
    store.dispose()


def test_stop_then_resume_a_tuning_job(tiny_split, tmp_path, store, monkeypatch) -> None:
    monkeypatch.setenv("OCULI_MAX_PARALLEL_JOBS", "2")
    src = tmp_path / "src"
    src.mkdir()  # a script that runs long the first time and saves where it is; a rerun finishes from there
    (src / "train.py").write_text(
        "import json, os, pathlib, time\nmark = pathlib.Path(os.environ['SM_CHECKPOINT_DIR']) / 'started'\n"
        "first = not mark.exists()\nmark.parent.mkdir(parents=True, exist_ok=True)\nmark.write_text('1')\n"
        "time.sleep(120 if first else 0)\nx = float(json.loads(os.environ['SM_HPS'])['x'])\nprint(f'score={x:.6f}')\n")
    result = CliRunner().invoke(app, [
        "tune", "--entry-point", "train.py", "--source-dir", str(src), "--train", str(tiny_split["train"]),
        "--metric-definition", "validation:score=score=([0-9.]+)", "--objective", "validation:score",
        "--range", "x=continuous:0:1", "--strategy", "random", "--max-jobs", "2", "--max-parallel-jobs", "2",
        "--name", "stop-t", "--detach"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    until(lambda: all((store.find(f"stop-t-00{i}") or {}).get("secondary_status") == "Training" for i in (1, 2)),
          timeout=240, what="both trials to run", explain=lambda: story(store, "stop-t"))
    assert CliRunner().invoke(app, ["jobs", "stop", "stop-t"]).exit_code == 0
    until(lambda: store.get("stop-t")["secondary_status"] == "Stopped", timeout=240, what="the tuning job to stop",
          explain=lambda: story(store, "stop-t"))
    assert {store.get(f"stop-t-00{i}")["secondary_status"] for i in (1, 2)} == {"Stopped"}
    resumed = CliRunner().invoke(app, ["jobs", "resume", "stop-t"], catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    assert store.get("stop-t")["status"] == "Completed"
    assert store.find("stop-t-003") is None
    for i in (1, 2):
        trial = store.get(f"stop-t-00{i}")
        assert trial["status"] == "Completed" and trial["attempts"] == 1  # continued once, not started anew
        assert trial["final_metrics"]["validation:score"] == pytest.approx(
            float(trial["spec"]["hyperparameters"]["x"]), abs=1e-5)


def limited_script_job(tmp_path: Path, data: Path, name: str, limit: int, *extra: str, jobs: int = 4) -> list[str]:
    """`oculi tune` arguments of a script tuning job (``jobs`` trials, one at a time, MaxRuntimeInSeconds ``limit``
    in its --config JSON) whose first trial ends at once and whose later ones would run far past the limit, each writing
    ``progress`` to its checkpoint folder first."""
    src, first = tmp_path / "src", tmp_path / "first-done"
    src.mkdir()
    (src / "train.py").write_text(
        f"import json, os, pathlib, time\nfirst = pathlib.Path({str(first)!r})\n"
        "ck = pathlib.Path(os.environ['SM_CHECKPOINT_DIR'])\nck.mkdir(parents=True, exist_ok=True)\n"
        "(ck / 'progress').write_text('started')\nif first.exists():\n    time.sleep(600)\nfirst.write_text('1')\n"
        "print(f\"score={float(json.loads(os.environ['SM_HPS'])['x']):.6f}\")\n")
    config = tmp_path / "tuning.json"
    config.write_text(json.dumps({
        "Strategy": "Random", "RandomSeed": 0,
        "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:score"},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": jobs, "MaxParallelTrainingJobs": 1,
                           "MaxRuntimeInSeconds": limit},
        "ParameterRanges": {"ContinuousParameterRanges": [{"Name": "x", "MinValue": "0", "MaxValue": "1"}]}}))
    return ["tune", "--entry-point", "train.py", "--source-dir", str(src), "--train", str(data),
            "--metric-definition", "validation:score=score=([0-9.]+)", "--config", str(config), "--name", name, *extra]


def trial_jobs(store: JobStore, name: str) -> list[dict]:
    """The training jobs of tuning job ``name``, by name."""
    return sorted((j for j in store.list() if (j["spec"].get("tags") or {}).get("TuningJob") == name),
                  key=lambda j: j["name"])


def test_max_runtime_ends_the_tuning_job_and_stops_its_running_trial(tiny_split, tmp_path, store,
                                                                     monkeypatch) -> None:
    limit = 25
    monkeypatch.setenv("OCULI_MAX_PARALLEL_JOBS", "1")
    started = time.time()
    result = CliRunner().invoke(app, limited_script_job(tmp_path, tiny_split["train"], "limit-t", limit),
                                catch_exceptions=False)
    elapsed = time.time() - started
    assert result.exit_code == 0, result.output
    assert "Completed (MaxRuntimeExceeded)" in result.output
    described = json.loads(CliRunner().invoke(app, ["jobs", "describe", "limit-t"]).output)
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    assert described["HyperParameterTuningEndReason"] == "MaxRuntimeExceeded"
    assert described["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxRuntimeInSeconds"] == limit
    assert limit <= described["ConsumedResources"]["RuntimeInSeconds"] < elapsed + 1
    trials = trial_jobs(store, "limit-t")
    assert 2 <= len(trials) < 4, story(store, "limit-t")
    assert all(t["status"] in ("Completed", "Stopped") for t in trials), story(store, "limit-t")
    assert trials[0]["secondary_status"] == "Completed" and trials[-1]["secondary_status"] == "Stopped"
    assert (runner.checkpoint_dir(trials[-1]) / "progress").read_text() == "started"  # kept, as on `jobs stop`
    assert described["BestTrainingJob"]["TrainingJobName"] == trials[0]["name"]
    assert described["TrainingJobStatusCounters"]["Stopped"] == 1 and elapsed < limit + 90
    from oculi.tuning.report import list_training_jobs

    last = {s["TrainingJobName"]: s for s in list_training_jobs(store.get("limit-t"), store)}[trials[-1]["name"]]
    assert last["FailureReason"] == "stopped: the tuning job ended (MaxRuntimeExceeded)"


def test_max_runtime_stays_the_end_reason_when_stopping_the_last_trial_makes_max_jobs(tiny_split, tmp_path, store,
                                                                                    monkeypatch) -> None:
    monkeypatch.setenv("OCULI_MAX_PARALLEL_JOBS", "1")
    result = CliRunner().invoke(app, limited_script_job(tmp_path, tiny_split["train"], "limit-2", 15, jobs=2),
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert [t["secondary_status"] for t in trial_jobs(store, "limit-2")] == ["Completed", "Stopped"]
    assert tuner_describe("limit-2", store)["HyperParameterTuningEndReason"] == "MaxRuntimeExceeded"


def test_max_runtime_pauses_while_stopped_and_counts_on_after_a_resume(tiny_split, tmp_path, store,
                                                                       monkeypatch) -> None:
    from oculi.tuning.report import runtime_seconds

    limit = 40
    monkeypatch.setenv("OCULI_MAX_PARALLEL_JOBS", "1")
    result = CliRunner().invoke(app, limited_script_job(tmp_path, tiny_split["train"], "limit-r", limit, "--detach"),
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    until(lambda: (store.find("limit-r-002") or {}).get("secondary_status") == "Training", timeout=240,
          what="the second trial to run", explain=lambda: story(store, "limit-r"))
    assert CliRunner().invoke(app, ["jobs", "stop", "limit-r"]).exit_code == 0
    until(lambda: store.get("limit-r")["secondary_status"] == "Stopped", timeout=240, what="the tuning job to stop",
          explain=lambda: story(store, "limit-r"))
    used = runtime_seconds(store, "limit-r")
    assert used < limit and store.get("limit-r-002")["secondary_status"] == "Stopped"
    time.sleep(3)
    assert runtime_seconds(store, "limit-r") == used  # the clock waits while the job is Stopped
    resumed_at = time.time()
    resumed = CliRunner().invoke(app, ["jobs", "resume", "limit-r"], catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    assert limit - used - 1 <= time.time() - resumed_at < limit - used + 60  # it ran for the time that was left
    described = tuner_describe("limit-r", store)
    assert described["HyperParameterTuningEndReason"] == "MaxRuntimeExceeded"
    assert limit <= described["ConsumedResources"]["RuntimeInSeconds"] < limit + 30
    trials = trial_jobs(store, "limit-r")
    assert [t["name"] for t in trials] == ["limit-r-001", "limit-r-002"], story(store, "limit-r")
    second = trials[1]
    assert second["secondary_status"] == "Stopped" and second["attempts"] == 1  # resumed once, stopped at the limit
