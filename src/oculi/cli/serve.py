"""``oculi serve``."""

from __future__ import annotations

from pathlib import Path

import typer

from oculi.cli.common import RUNTIME_HELP, console


def serve(
    models: list[Path] = typer.Argument(None, help="Model bundles (folders or model.tar.gz): one endpoint each, "
                                        "named after its folder. Leave out when --config names them."),
    port: int = typer.Option(8080, "--port", help="TCP port (SageMaker containers use 8080)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. 0.0.0.0 opens the data plane to the "
                             "network; the control plane (/api/…) then needs OCULI_TOKEN, or answers this machine "
                             "only."),
    config: Path | None = typer.Option(None, "--config", help="Endpoint configuration (YAML or JSON): endpoints, "
                                       "their production variants {name, model, weight} and batching settings."),
    runtime: str = typer.Option("auto", "--runtime", help=RUNTIME_HELP + " The choice is printed at start-up."),
    max_batch_size: int | None = typer.Option(None, "--max-batch-size", min=1, help="Dynamic batching: most "
                                              "requests one model forward takes (default 8; 1 turns batching "
                                              "off). For variants whose config sets none."),
    max_latency_ms: float | None = typer.Option(None, "--max-latency-ms", min=0, help="Longest a request waits "
                                                "for others to join its batch, only while more are arriving "
                                                "(default 5). For variants whose config sets none."),
    max_queue_size: int | None = typer.Option(None, "--max-queue-size", min=1, help="Requests a variant holds "
                                              "before answering 503 with Retry-After (default 32). For variants "
                                              "whose config sets none."),
    max_body_mb: float = typer.Option(6.0, "--max-body-mb", min=0.001, help="Largest request body in MiB; "
                                      "larger ones get 413 (SageMaker's limit is 6 MB)."),
    capture: Path | None = typer.Option(None, "--capture", help="Data capture: write sampled requests and "
                                        "responses as SageMaker capture records (JSON lines) under this folder."),
    capture_percent: float = typer.Option(20.0, "--capture-percent", min=0, max=100, help="Share of invocations "
                                          "captured."),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request (off: costs time under load)."),
    multi_model: Path | None = typer.Option(None, "--multi-model", help="Serve every bundle under this folder "
                                            "(folders or .tar.gz) as one multi-model endpoint: a request names its "
                                            "model with TargetModel (X-Amzn-SageMaker-Target-Model), loaded on "
                                            "first use."),
    max_loaded_models: int = typer.Option(5, "--max-loaded-models", min=1, help="With --multi-model: models kept "
                                          "in memory; beyond it the least recently used is unloaded."),
    allowed_hosts: str = typer.Option("", "--allowed-hosts", help="Extra names (comma-separated) the server "
                                      "answers to in the Host header, besides localhost and the bound address, "
                                      "e.g. oculi.lan,.corp.example (a leading dot: its subdomains). Requests for "
                                      "other names are refused (DNS rebinding). Also OCULI_ALLOWED_HOSTS."),
) -> None:
    """Serve models as SageMaker-compatible endpoints: GET /ping, POST /invocations and
    /endpoints/NAME/invocations (boto3's sagemaker-runtime client works unchanged), POST /endpoints/NAME/predict
    (friendly JSON), GET /metrics (Prometheus), /docs. SIGTERM or Ctrl-C finish the requests in flight, then exit.

    Example: oculi serve models/ants --port 8080

    Example: curl -s -H 'Content-Type: image/jpeg' --data-binary @bee.jpg http://127.0.0.1:8080/invocations

    Example: oculi serve --config endpoint.yaml --max-batch-size 16 --capture captures --capture-percent 20

    An endpoint.yaml with two variants splitting traffic 3:1:

      endpoints:
        - name: ants
          variants:
            - {name: resnet18, model: models/ants-r18, weight: 3}
            - {name: lite0, model: models/ants-lite0, weight: 1}

    Example: oculi serve --multi-model models/ --max-loaded-models 5, then
    boto3.client("sagemaker-runtime", endpoint_url="http://127.0.0.1:8080").invoke_endpoint(EndpointName="models",
    TargetModel="ants.tar.gz", ContentType="image/jpeg", Body=...)

    Example: oculi serve group:ants (the latest approved version in the model registry, see `oculi models`)

    Change weights while serving: curl -X POST http://127.0.0.1:8080/api/endpoints/ants/weights
    -H 'Content-Type: application/json' -d '{"DesiredWeightsAndCapacities": [{"VariantName": "lite0",
    "DesiredWeight": 3}]}'
    """
    from oculi.errors import ConfigError
    from oculi.inference.runtimes import RUNTIMES
    from oculi.serving.config import Batching
    from oculi.serving.guard import split_hosts
    from oculi.serving.server import ServeOptions, endpoint_config
    from oculi.serving.server import serve as run

    if runtime not in RUNTIMES:
        raise ConfigError(f"--runtime {runtime!r} is not a runtime; use {', '.join(RUNTIMES)}.")
    options = ServeOptions(batching=Batching(max_batch_size=max_batch_size, max_latency_ms=max_latency_ms,
                                             max_queue_size=max_queue_size),
                           runtime=runtime,  # type: ignore[arg-type]
                           max_body_bytes=int(max_body_mb * 1024 * 1024), capture_dir=capture,
                           capture_percent=capture_percent, allowed_hosts=split_hosts(allowed_hosts))
    if multi_model is not None and (models or config):
        raise ConfigError("--multi-model serves every bundle of its folder; leave out model paths and --config.")
    run(None if multi_model else endpoint_config(list(models or []), config), options,
        multi_model=multi_model, max_loaded_models=max_loaded_models, host=host, port=port, access_log=access_log,
        echo=console.print)
