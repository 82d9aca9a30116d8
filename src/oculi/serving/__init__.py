"""The oculi server. The data plane (:mod:`oculi.serving.app`: SageMaker's ``/ping`` and ``/invocations``
contract, endpoints with production variants, dynamic batching, metrics, data capture), run by ``oculi serve``
(:mod:`oculi.serving.server`) or from Python (:mod:`oculi.serving.sdk`: ``Model(path).deploy()``); and the
training-jobs control plane (:mod:`oculi.serving.control`)."""
