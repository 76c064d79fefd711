"""The KServe adapter: a `kserve.Model` that translates KServe's payloads to the Scorer's one entry point.

Domain errors become a REST status with a JSON `{"error": ...}` body (serving/app.py's handler), or a gRPC status.
"""

from __future__ import annotations

from dataclasses import dataclass

from grpc_interceptor import exceptions as grpc_errors
from kserve import InferOutput, InferRequest, InferResponse, Model

from transformer.codec import Tensor, input_metadata, output_metadata
from transformer.errors import ScoringError
from transformer.extras.reasons import output_metadata as reason_metadata
from transformer.scoring import Scorer, ScoringRequest
from transformer.v2_request import check_requested_outputs, tensor_from_grpc, tensor_from_json

# The outputs a V2 request may name: those of the model metadata (GET /v2/models/<name>), the reason outputs only
# when the request asks for reason codes.
OUTPUT_NAMES = [o["name"] for o in output_metadata()]
REASON_OUTPUT_NAMES = [o["name"] for o in reason_metadata()]

_GRPC_ERRORS = {
    "INVALID_ARGUMENT": grpc_errors.InvalidArgument,
    "UNAUTHENTICATED": grpc_errors.Unauthenticated,
    "RESOURCE_EXHAUSTED": grpc_errors.ResourceExhausted,
    "UNAVAILABLE": grpc_errors.Unavailable,
    "DEADLINE_EXCEEDED": grpc_errors.DeadlineExceeded,
    "NOT_FOUND": grpc_errors.NotFound,
    "INTERNAL": grpc_errors.Internal,
}


class UnreadableParameter:
    """A gRPC parameter set in a field KServe's InferParameter does not have (bool, int64 and string only), such as
    tritonclient's double_param for `parameters={"reasons": 3.0}`: present, so it must be refused, not ignored. Its
    repr is what the refusal shows as the value."""

    def __repr__(self) -> str:
        return "a value that is not bool_param, int64_param or string_param (send int64_param)"


def parameter_value(parameters, name: str):
    """A request parameter as a Python value, from REST (plain dict) or gRPC (InferParameter map); an
    UnreadableParameter when gRPC sent it in a field KServe's proto does not know."""
    if not parameters or name not in parameters:
        return None
    value = parameters[name]
    if hasattr(value, "WhichOneof"):
        which = value.WhichOneof("parameter_choice")
        return getattr(value, which) if which else UnreadableParameter()
    return value


def grpc_error(error: ScoringError) -> Exception:
    """A domain error as the gRPC status it is answered with."""
    return _GRPC_ERRORS[error.grpc_status](error.message)


def requested_outputs(request: InferRequest) -> list[tuple[str, dict | None]]:
    """The outputs a request names, as (name, parameters), REST or gRPC (KServe made gRPC's parameters a dict)."""
    return [(o.name, o.parameters) for o in request.request_outputs or ()]


def to_tensors(request: InferRequest) -> list[Tensor]:
    """KServe's inputs → Tensors through transformer/v2_request.py, so every protocol checks shapes, datatypes and
    byte counts with the same rules and words (KServe's own as_numpy would reshape with int64 arithmetic)."""
    tensors = []
    for index, item in enumerate(request.inputs):
        if request.from_grpc:
            raw = item._raw_data  # raw_input_contents: KServe keeps them on the input, unparsed
            tensors.append(
                tensor_from_grpc(
                    item.name, item.datatype, list(item.shape), None if raw is not None else item.data, raw
                )
            )
        else:
            # JSON data, or binary data KServe decoded after v2_request.parse_binary accepted the body (app.py).
            tensors.append(
                tensor_from_json(
                    {
                        "name": item.name,
                        "datatype": item.datatype,
                        "shape": list(item.shape),
                        "data": item.data,
                    },
                    index,
                )
            )
    return tensors


def to_infer_outputs(tensors: list[Tensor], binary: bool) -> list[InferOutput]:
    outputs = []
    for tensor in tensors:
        output = InferOutput(name=tensor.name, shape=tensor.shape, datatype=tensor.datatype)
        output.set_data_from_numpy(tensor.data, binary_data=binary)
        outputs.append(output)
    return outputs


@dataclass
class _Call:
    """What preprocess hands to predict: the payload, untouched, and the request it belongs to."""

    request: ScoringRequest
    payload: object
    api_key: str | None
    outputs: list[Tensor] | dict | None = None


class LeadScoringModel(Model):
    """KServe calls preprocess → predict → postprocess; the whole scoring path runs in predict, through the one
    entry point, so KServe's REST and gRPC paths answer exactly like the fast path."""

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
        # What gRPC ModelMetadata lists: the same outputs as REST's metadata route, reason outputs included.
        return output_metadata() + (reason_metadata() if self.scorer.extras.explainer else [])

    async def preprocess(self, payload, headers=None):
        headers = headers or {}
        grpc = isinstance(payload, InferRequest) and payload.from_grpc
        return _Call(
            ScoringRequest.from_headers("grpc" if grpc else "rest", headers),
            payload,
            headers.get("x-api-key"),
        )

    async def predict(self, call: _Call, headers=None, response_headers=None):
        request, payload = call.request, call.payload
        try:
            if isinstance(payload, InferRequest):

                def inputs() -> list[Tensor]:
                    # Called after the key check, before anything is scored: a request naming an output it would
                    # not get is refused here, not after its leads were scored and recorded.
                    check_requested_outputs(
                        requested_outputs(payload),
                        OUTPUT_NAMES,
                        REASON_OUTPUT_NAMES,
                        reasons=bool(request.reasons_k),
                    )
                    return to_tensors(payload)

                call.outputs = await self.scorer.score_v2(
                    request, call.api_key, inputs, parameter_value(payload.parameters, "reasons")
                )
            else:
                call.outputs = await self.scorer.score_v1(request, call.api_key, payload)
        except ScoringError as error:
            if request.protocol == "grpc":
                raise grpc_error(error) from None
            error.request_id = request.request_id
            raise
        return call

    def postprocess(self, call: _Call, headers=None, response_headers=None):
        request = call.request
        if response_headers is not None:
            response_headers["x-request-id"] = request.request_id
            response_headers["x-scoring-id"] = request.scoring_id
        if isinstance(call.outputs, dict):
            return call.outputs
        payload: InferRequest = call.payload
        grpc = request.protocol == "grpc"
        binary = grpc or bool(payload.use_binary_outputs)
        outputs = call.outputs
        if grpc and payload.request_outputs:
            # KServe's gRPC encoder ignores requested outputs: the named ones (checked before scoring), in that order.
            produced = {t.name: t for t in outputs}
            outputs = [produced[o.name] for o in payload.request_outputs]
        return InferResponse(
            response_id=payload.id or request.request_id,
            model_name=self.name,
            model_version=self.scorer.card.version,
            parameters={"scoring_id": request.scoring_id},
            infer_outputs=to_infer_outputs(outputs, binary),
            # REST: KServe filters to the outputs a client named and honours their binary_data wish.
            requested_outputs=None if grpc else payload.request_outputs or None,
            from_grpc=grpc,
            use_binary_outputs=binary,
        )
