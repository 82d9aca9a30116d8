"""The Python SDK for endpoints, in the shape of the SageMaker Python SDK's ``Model.deploy()`` → ``Predictor``::

    from oculi import Model

    with Model("models/ants").deploy() as predictor:        # a local endpoint on a free port
        print(predictor.predict("photo.jpg"))               # {"prediction": [0.93, 0.07]}
        print(predictor.predict("photo.jpg", accept="application/json;verbose"))

    # an endpoint some `oculi serve` already runs:
    predictor = EndpointPredictor("ants", url="http://127.0.0.1:8080")

The client uses only the standard library; JSON answers come back parsed, image answers (segmentation masks) as
PNG bytes. HTTP errors raise :class:`EndpointError` with the server's message."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from oculi.errors import OculiError
from oculi.serving.config import Batching, config_from_models, endpoint_name_for
from oculi.serving.endpoints import Runtime
from oculi.settings import settings


class EndpointError(OculiError):
    """An endpoint answered with an error; ``status`` is the HTTP status, the message the server's."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
        self.http_status = status


def _content_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return "application/x-image"


class EndpointPredictor:
    """A client of one endpoint of an oculi server at ``url``. ``target_variant`` sends every request to that
    variant (SageMaker's ``TargetVariant``); :attr:`last_variant` is the variant that served the last request.
    ``token``: the control plane's token (default ``$OCULI_TOKEN``)."""

    def __init__(self, endpoint_name: str, url: str = "http://127.0.0.1:8080", timeout: float = 60.0,
                 target_variant: str | None = None, token: str | None = None) -> None:
        self.endpoint_name = endpoint_name
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.target_variant = target_variant
        self.token = token
        self.last_variant: str | None = None
        self._server: Any = None  # the BackgroundServer when Model.deploy started one

    def _call(self, method: str, path: str, body: bytes | None = None,
              headers: dict[str, str] | None = None) -> tuple[bytes, dict[str, str]]:
        request = urllib.request.Request(f"{self.url}{path}", data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read(), {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                message = json.loads(raw)["message"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode("utf-8", "replace")[:500]
            raise EndpointError(f"{method} {path} → {e.code}: {message}", e.code) from None
        except urllib.error.URLError as e:
            raise EndpointError(f"cannot reach {self.url} ({e.reason}); is the endpoint server running?", 0) \
                from None

    def predict(self, data: bytes | str | Path, accept: str | None = None, content_type: str | None = None,
                target_variant: str | None = None) -> Any:
        """Invoke the endpoint with an image (encoded bytes or a file path). ``accept`` picks the answer's
        form (e.g. ``application/json;verbose``, ``application/json;annotation=1``, ``image/png``); the content
        type is guessed from the bytes unless given. Returns parsed JSON, or bytes for image answers."""
        body = data if isinstance(data, bytes) else Path(data).expanduser().read_bytes()
        headers = {"Content-Type": content_type or _content_type(body)}
        if accept:
            headers["Accept"] = accept
        variant = target_variant or self.target_variant
        if variant:
            headers["X-Amzn-SageMaker-Target-Variant"] = variant
        raw, response_headers = self._call("POST", f"/endpoints/{self.endpoint_name}/invocations", body, headers)
        self.last_variant = response_headers.get("x-amzn-invoked-production-variant")
        if response_headers.get("content-type", "").startswith("application/json"):
            return json.loads(raw)
        return raw

    def _control(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        token = self.token or settings().token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        raw, _ = self._call(method, f"/api/endpoints/{self.endpoint_name}{path}",
                            json.dumps(body).encode() if body is not None else None, headers)
        return json.loads(raw)

    def describe(self) -> dict[str, Any]:
        """The endpoint's description: variants, weights, request counts, latencies and mean batch sizes."""
        return self._control("GET", "")

    def update_weights(self, weights: dict[str, float]) -> dict[str, Any]:
        """Change variants' traffic weights while serving (others keep theirs); returns the new description."""
        return self._control("POST", "/weights", {"DesiredWeightsAndCapacities": [
            {"VariantName": name, "DesiredWeight": weight} for name, weight in weights.items()]})

    def delete_endpoint(self) -> None:
        """Stop the local server :meth:`Model.deploy` started (requests in flight finish first). A predictor
        connected to a server it did not start cannot stop it."""
        if self._server is None:
            raise OculiError(f"this predictor did not start the server at {self.url}; stop it where it runs "
                             "(Ctrl-C or SIGTERM to `oculi serve`).")
        self._server.stop()
        self._server = None

    def __enter__(self) -> EndpointPredictor:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._server is not None:
            self.delete_endpoint()


class Model:
    """A model bundle (folder or ``model.tar.gz``) that :meth:`deploy` serves as a local endpoint."""

    def __init__(self, model_data: str | Path, name: str | None = None, runtime: Runtime = "torch") -> None:
        self.model_data = Path(model_data)
        self.name = name
        self.runtime = runtime

    def deploy(self, port: int | None = None, host: str = "127.0.0.1", endpoint_name: str | None = None,
               max_batch_size: int | None = None, max_latency_ms: float | None = None,
               max_queue_size: int | None = None, capture_dir: str | Path | None = None,
               capture_percent: float = 20.0) -> EndpointPredictor:
        """Load the model and serve it in a background thread of this process (``port=None``: a free port);
        returns a connected :class:`EndpointPredictor` whose :meth:`~EndpointPredictor.delete_endpoint` (or the
        end of a ``with`` block) stops the server. Batching settings default to ``oculi serve``'s."""
        from oculi.serving.server import BackgroundServer, ServeOptions, build_app

        name = endpoint_name or self.name or endpoint_name_for(self.model_data)
        config = config_from_models([self.model_data], [name])
        options = ServeOptions(batching=Batching(max_batch_size=max_batch_size, max_latency_ms=max_latency_ms,
                                                 max_queue_size=max_queue_size),
                               runtime=self.runtime, capture_dir=Path(capture_dir) if capture_dir else None,
                               capture_percent=capture_percent, host=host)
        app = build_app(config, options, echo=lambda _line: None)
        server = BackgroundServer(app, host, port).start()
        predictor = EndpointPredictor(name, url=server.url, token=app.state.oculi_access.secret)
        predictor._server = server
        return predictor
