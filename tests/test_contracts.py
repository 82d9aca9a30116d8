"""Contract tests over the registries: every registered algorithm, with its tiny configuration
(``Algorithm.tiny_hyperparameters``, and each of its ``tiny_variants`` — another network on the same contract, such
as detection's FCOS) on its task's generated data (``DataTask.synthesize``), goes the whole way — prepare, train
through the engine, bundle, predict, every codec, ONNX export, stop + resume, batch transform and a real server. A
new algorithm is tested by registering it (timm's ``tests/test_models.py`` is the model)."""

from __future__ import annotations

import copy
import io
import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import lightning as L
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from oculi.algorithms import ALGORITHMS, get_algorithm
from oculi.artifacts import load_bundle
from oculi.data.tasks import DATA_TASKS
from oculi.engine.training import TrainResult, train
from oculi.tasks import TASKS, get_task, load_predictor

ALGORITHM_NAMES = ALGORITHMS.names()
# every algorithm with its tiny configuration, then each of its variants: (algorithm, variant or "")
CASES = [(name, variant) for name in ALGORITHM_NAMES for variant in ["", *get_algorithm(name).tiny_variants]]


def tiny_hyperparameters(name: str, variant: str) -> dict[str, str]:
    """The tiny configuration of ``name`` with ``variant``'s overrides."""
    algorithm = get_algorithm(name)
    return {**algorithm.tiny_hyperparameters, **(algorithm.tiny_variants[variant] if variant else {})}
QUIET = {"progress": False, "echo": lambda _line: None}


class KeepModels(L.Callback):
    """Keeps a copy of the network after each epoch (its validation included), by 1-based epoch: the bundle must
    equal the in-memory model of its best epoch."""

    def __init__(self) -> None:
        self.models: dict[int, torch.nn.Module] = {}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.models[trainer.current_epoch + 1] = copy.deepcopy(pl_module.model).cpu().eval()


class StopAtStep:
    """``stop_requested`` that says yes from the ``step``-th question on (it is asked once per optimizer step)."""

    def __init__(self, step: int) -> None:
        self.step, self.asked = step, 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.asked >= self.step


@dataclass
class Trained:
    """One algorithm trained on its task's generated data."""

    name: str
    channels: dict[str, Path]
    hyperparameters: dict[str, str]
    result: TrainResult
    in_memory: torch.nn.Module
    images: list[Path]


@pytest.fixture(scope="module", params=CASES, ids=[f"{n}[{v}]" if v else n for n, v in CASES])
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    name, variant = request.param
    algorithm = get_algorithm(name)
    assert algorithm.tiny_hyperparameters, f"{name} registers no tiny configuration"
    root = tmp_path_factory.mktemp(f"{name}-{variant}" if variant else name)
    synthesize = DATA_TASKS.get(algorithm.task).synthesize
    assert synthesize is not None, f"task {algorithm.task} cannot generate data"
    channels = synthesize(root / "data", 0)
    hyperparameters = {**tiny_hyperparameters(name, variant), "checkpoint_interval": "0"}
    keep = KeepModels()
    result = train(name, channels, hyperparameters, output=root / "model", callbacks=[keep], **QUIET)
    images = sorted(p for p in (root / "data").rglob("*.png") if "annotation" not in str(p))[:2]
    assert result.best_epoch in keep.models, (result.best_epoch, sorted(keep.models))
    return Trained(name, channels, hyperparameters, result, keep.models[result.best_epoch], images)


def test_every_algorithm_names_a_registered_task_with_every_part():
    for name in ALGORITHM_NAMES:
        contract = get_task(get_algorithm(name).task)
        assert contract.name == get_algorithm(name).task
        assert contract.predictor.task == contract.name
        assert contract.codec.default in contract.codec.encoders
        assert contract.data is DATA_TASKS.get(contract.name)
        assert contract.transform_batch_size >= 1
        assert get_algorithm(name).export_plan is not None or contract.export_plan is not None, name
    assert set(TASKS.names()) == set(DATA_TASKS.names())


@pytest.mark.parametrize(("name", "variant"), CASES)
def test_prepare_reads_the_generated_data(name, variant, tmp_path):
    algorithm = get_algorithm(name)
    channels = DATA_TASKS.get(algorithm.task).synthesize(tmp_path, 1)
    hp = algorithm.hyperparameters.model_validate(tiny_hyperparameters(name, variant))
    prepared = algorithm.prepare(channels, hp, init_meta=None, image_roots=None, progress=False)
    assert len(prepared.train) > 0 and len(prepared.validation) > 0
    assert len(prepared.classes) >= 2
    assert prepared.hyperparameters.num_classes == len(prepared.classes)
    assert len(prepared.train_data) == len(prepared.train) and len(prepared.val_data) == len(prepared.validation)


def test_trains_through_the_engine(trained):
    result = trained.result
    algorithm = get_algorithm(trained.name)
    assert len(result.history) == int(trained.hyperparameters["epochs"])
    assert algorithm.metric in result.metrics
    meta = json.loads((result.model_dir / "model.json").read_text())
    assert (meta["algorithm"], meta["task"]) == (trained.name, algorithm.task)
    assert meta["classes"] == result.classes
    assert meta["dataset"]["fingerprint"], f"{trained.name}: the dataset fingerprint is empty"


def test_the_bundle_predicts_what_the_in_memory_model_predicts(trained):
    bundle = load_bundle(trained.result.model_dir)
    saved = load_file(str(trained.result.model_dir / "weights.safetensors"))
    for key, value in trained.in_memory.state_dict().items():
        assert torch.equal(saved[key], value), f"{trained.name}: weight {key} differs from the trained model"
    contract = get_task(bundle.meta["task"])
    from_disk = contract.predictor(bundle, precision="float32")
    in_memory = contract.predictor(replace(bundle, model=trained.in_memory), precision="float32")
    for image in trained.images:
        a, b = from_disk.predict(image), in_memory.predict(image)
        assert contract.codec.encode(a, contract.codec.default) == contract.codec.encode(b, contract.codec.default)


def test_predictor_types_and_every_codec(trained):
    predictor = load_predictor(trained.result.model_dir)
    contract = get_task(get_algorithm(trained.name).task)
    assert isinstance(predictor, contract.predictor)
    one = predictor.predict(trained.images[0])
    many = predictor.predict(trained.images)
    assert isinstance(many, list) and len(many) == len(trained.images)
    assert all(type(r) is type(one) for r in many)
    width, height = Image.open(trained.images[0]).size
    for media in contract.codec.encoders:
        assert contract.codec.choose(media) == media
        body = contract.codec.encode(one, media)
        if media.startswith("application/json"):
            assert isinstance(json.loads(body), dict)
        else:
            assert Image.open(io.BytesIO(body)).size == (width, height)
    friendly = contract.friendly(one, None, 0.0)
    contract.friendly_schema.model_validate({"endpoint": "e", "variant": "v", "task": contract.name, **friendly})


def test_onnx_export_passes_its_parity_check(trained, tmp_path):
    from oculi.export import export_onnx

    copy_dir = shutil.copytree(trained.result.model_dir, tmp_path / "bundle")
    result = export_onnx(copy_dir)
    assert result.parity.passed and result.path.is_file()
    onnx = load_predictor(copy_dir, runtime="onnx")
    assert type(onnx.predict(trained.images[0])) is type(load_predictor(copy_dir).predict(trained.images[0]))


def test_stop_then_resume_ends_with_the_same_weights(trained, tmp_path):
    stopped = train(trained.name, trained.channels, trained.hyperparameters, output=tmp_path / "run",
                    checkpoint_dir=tmp_path / "ck", stop_requested=StopAtStep(3), **QUIET)
    assert stopped.stopped and stopped.checkpoint is not None
    resumed = train(trained.name, trained.channels, trained.hyperparameters, output=tmp_path / "run",
                    overwrite=True, checkpoint_dir=tmp_path / "ck", resume_from=tmp_path / "ck" / "last.ckpt",
                    **QUIET)
    reference = load_file(str(trained.result.model_dir / "weights.safetensors"))
    again = load_file(str(resumed.model_dir / "weights.safetensors"))
    assert reference.keys() == again.keys()
    for key in reference:
        torch.testing.assert_close(again[key], reference[key], rtol=0, atol=1e-6, msg=f"{trained.name}: {key}")


def _assert_close_json(got: object, expected: object, where: str) -> None:
    """``got`` equals ``expected`` (decoded JSON) in structure, strings and ints; floats to 1e-4 relative."""
    if isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-4, abs=1e-5), where
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and got.keys() == expected.keys(), where
        for key in expected:
            _assert_close_json(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list) and expected and all(isinstance(row, list) for row in expected):
        # rows (detections): near-equal scores may swap places, so each expected row must match one written row
        assert isinstance(got, list) and len(got) == len(expected), where
        left = list(got)
        for i, row in enumerate(expected):
            match = next((r for r in left if len(r) == len(row) and all(
                a == pytest.approx(b, rel=1e-4, abs=1e-5) for a, b in zip(r, row, strict=True))), None)
            assert match is not None, f"{where}[{i}] {row} not written"
            left.remove(match)
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), where
        for i, (a, b) in enumerate(zip(got, expected, strict=True)):
            _assert_close_json(a, b, f"{where}[{i}]")
    else:
        assert got == expected, where


def test_batch_transform_of_two_images(trained, tmp_path):
    from oculi.batch.job import transform

    inputs = tmp_path / "in"
    inputs.mkdir()
    for image in trained.images:
        shutil.copy(image, inputs / image.name)
    summary = transform(trained.result.model_dir, inputs, tmp_path / "out", progress=False, echo=None)
    assert summary.status == "Completed"
    contract = get_task(get_algorithm(trained.name).task)
    predictor = load_predictor(trained.result.model_dir)
    for image in trained.images:
        written = (tmp_path / "out" / f"{image.name}.out").read_bytes()
        expected = contract.codec.encode(predictor.predict(image), contract.codec.default)
        if contract.codec.default == "application/json":
            # the transform runs both images as one batch: on an AVX2-only CPU oneDNN's batch-2 kernels round the
            # last printed digit differently from batch 1
            _assert_close_json(json.loads(written), json.loads(expected), image.name)
        else:
            assert written == expected, image.name


def test_the_served_answer_equals_the_in_process_one(trained):
    from oculi.serving.app import create_serving_app
    from oculi.serving.config import parse_config
    from oculi.serving.endpoints import load_endpoints
    from oculi.serving.metrics import ServingMetrics
    from oculi.serving.server import BackgroundServer

    config = parse_config({"endpoints": [{"name": "model", "variants": [
        {"name": "AllTraffic", "model": str(trained.result.model_dir)}]}]}, "test", Path.cwd())
    metrics = ServingMetrics()
    server = BackgroundServer(create_serving_app(load_endpoints(config, metrics, echo=lambda _line: None),
                                                 metrics)).start()
    try:
        contract = get_task(get_algorithm(trained.name).task)
        predictor = load_predictor(trained.result.model_dir)
        for image in trained.images:
            answer = httpx.post(f"{server.url}/invocations", content=image.read_bytes(),
                                headers={"Content-Type": "image/png"}, timeout=60)
            assert answer.status_code == 200, answer.text
            assert answer.content == contract.codec.encode(predictor.predict(image), contract.codec.default)
    finally:
        server.stop()
