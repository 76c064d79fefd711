"""The KServe adapter: a `kserve.Model` whose preprocess/predict/postprocess wire the domain pieces together.

This module, with fast_routes.py, server_app.py, drain.py, predictor_hop.py, cli.py and __main__.py, is the only
place that knows KServe. Domain errors become a REST status with a JSON `{"error": ...}` body, or a gRPC status, here.
"""

from __future__ import annotations

from grpc_interceptor import exceptions as grpc_errors
from kserve import InferOutput, InferRequest, InferResponse, Model

from transformer.codec import Tensor, input_metadata, output_metadata
from transformer.errors import InvalidRequest, ScoringError
from transformer.scoring import Scorer, ScoringRequest, request_id_from

_GRPC_ERRORS = {
    "INVALID_ARGUMENT": grpc_errors.InvalidArgument,
    "UNAUTHENTICATED": grpc_errors.Unauthenticated,
    "RESOURCE_EXHAUSTED": grpc_errors.ResourceExhausted,
    "UNAVAILABLE": grpc_errors.Unavailable,
    "DEADLINE_EXCEEDED": grpc_errors.DeadlineExceeded,
    "INTERNAL": grpc_errors.Internal,
}


def parameter_value(parameters, name: str):
    """A request parameter as a Python value, from REST (plain dict) or gRPC (InferParameter map)."""
    if not parameters or name not in parameters:
        return None
    value = parameters[name]
    if hasattr(value, "WhichOneof"):
        which = value.WhichOneof("parameter_choice")
        return getattr(value, which) if which else None
    return value


def to_tensors(request: InferRequest) -> list[Tensor]:
    tensors = []
    for item in request.inputs:
        try:
            data = item.as_numpy()
        except Exception as exc:  # noqa: BLE001 - KServe raises several types for data that does not fit the shape
            raise InvalidRequest(f"input '{item.name}': data does not match datatype {item.datatype} and shape "
                                 f"{list(item.shape)}: {str(exc)[:200]}") from None
        tensors.append(Tensor(item.name, item.datatype, [int(d) for d in item.shape], data))
    return tensors


def to_infer_outputs(tensors: list[Tensor], binary: bool) -> list[InferOutput]:
    outputs = []
    for tensor in tensors:
        output = InferOutput(name=tensor.name, shape=tensor.shape, datatype=tensor.datatype)
        output.set_data_from_numpy(tensor.data, binary_data=binary)
        outputs.append(output)
    return outputs


class LeadScoringModel(Model):
    def __init__(self, name: str, scorer: Scorer):
        super().__init__(name, return_response_headers=True)
        self.scorer = scorer
        self.ready = True

    def validate(self, payload):
        return payload  # the codec validates; KServe's generic checks would reject our request object

    async def healthy(self) -> bool:
        return self.ready

    def get_input_types(self) -> list[dict]:
        return input_metadata()

    def get_output_types(self) -> list[dict]:
        return output_metadata()

    def _fail(self, request: ScoringRequest, error: ScoringError) -> Exception:
        self.scorer.finish(request, error.outcome, error)
        if request.protocol == "grpc":
            return _GRPC_ERRORS[error.grpc_status](error.message)
        error.request_id = request.request_id
        return error

    async def preprocess(self, payload, headers=None):
        headers = headers or {}
        grpc = isinstance(payload, InferRequest) and payload.from_grpc
        request = ScoringRequest("grpc" if grpc else "rest", request_id_from(headers))
        request.headers = {"x-request-id": request.request_id}
        try:
            self.scorer.admit(request, headers.get("x-api-key"))
            if isinstance(payload, InferRequest):
                request.v2_id = payload.id
                request.binary_outputs = grpc or bool(payload.use_binary_outputs)
                request.requested_outputs = payload.request_outputs
                self.scorer.reasons_requested(request, parameter_value(payload.parameters, "reasons"))
                self.scorer.decode_v2(request, to_tensors(payload))
            else:
                if isinstance(payload, dict):
                    self.scorer.reasons_requested(request, (payload.get("parameters") or {}).get("reasons")
                                                  if isinstance(payload.get("parameters"), dict) else None)
                self.scorer.decode_v1(request, payload)
        except ScoringError as error:
            raise self._fail(request, error) from None
        except Exception as exc:
            self.scorer.finish(request, "error", ScoringError(type(exc).__name__))   # counted, then KServe's 500
            raise
        return request

    async def predict(self, request: ScoringRequest, headers=None, response_headers=None):
        try:
            await self.scorer.predict(request)
        except ScoringError as error:
            raise self._fail(request, error) from None
        except Exception as exc:
            self.scorer.finish(request, "error", ScoringError(type(exc).__name__))
            raise
        return request

    def postprocess(self, request: ScoringRequest, headers=None, response_headers=None):
        if response_headers is not None:
            response_headers["x-request-id"] = request.request_id
        if request.form == "v1_instances":
            return self.scorer.v1_body(request)
        outputs = self.scorer.v2_outputs(request)
        return InferResponse(response_id=getattr(request, "v2_id", None) or request.request_id, model_name=self.name,
                             model_version=self.scorer.card.version,
                             infer_outputs=to_infer_outputs(outputs, request.binary_outputs),
                             # KServe filters to the outputs a client named and honours their binary_data wish.
                             requested_outputs=request.requested_outputs or None,
                             from_grpc=request.protocol == "grpc", use_binary_outputs=request.binary_outputs)
