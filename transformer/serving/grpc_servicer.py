"""KServe's gRPC servicer, with what its REST routes here already do: model versions and datatypes checked first.

KServe's `InferenceServicer` drops the request's model version (`ModelInfer.model_version`, `ModelReady.version`,
`ModelMetadata.version`): any version was answered as the served one. Here an empty version is the served one and
another is NOT_FOUND naming both, as REST's 404 (serving/versions.py); `ModelInfer` checks the key first, like every
answer about a request's content. `ModelMetadata` also lists the served version, as REST's metadata does.

KServe's `InferRequest.from_grpc` refuses an input datatype it does not know with "invalid content type", naming
neither the input nor the datatypes there are: here it is INVALID_ARGUMENT naming both, after the key check, counted
like every refusal; so is KServe's check that `raw_input_contents` matches the inputs, which ran before the key check
(a keyless call heard what was wrong with its tensors). Bytes that are not a request message are INVALID_ARGUMENT
(serving/grpc_handlers.py), not grpcio's UNKNOWN. Everything else is KServe's servicer unchanged.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import NamedTuple

from kserve.errors import InvalidInput, ModelNotFound
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import server as kserve_grpc_server
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.utils.utils import to_headers

from transformer import request_ids
from transformer.errors import InvalidRequest, NotServed, ScoringError
from transformer.scoring import Scorer, ScoringRequest
from transformer.serving import grpc_handlers
from transformer.serving.grpc_handlers import Undecodable
from transformer.serving.kserve_model import LeadScoringModel, grpc_error
from transformer.serving.versions import refusal
from transformer.v2_request import check_datatype


class LeadScoringServicer(InferenceServicer):
    def _scorer(self, model_name: str) -> Scorer | None:
        try:
            model = self._data_plane.get_model_from_registry(model_name)
        except ModelNotFound:
            # KServe's interceptor answers it NOT_FOUND echoing the whole name, and logs an ERROR with a traceback
            # for every client's typo; REST answers it without either (serving/app.py).
            raise grpc_error(NotServed.model(model_name)) from None
        return model.scorer if isinstance(model, LeadScoringModel) else None

    def _check_version(self, scorer: Scorer | None, asked: str) -> None:
        if scorer is not None and asked and asked != scorer.card.version:
            raise grpc_error(NotServed.version(asked, scorer.card.version))

    async def ModelReady(self, request: pb.ModelReadyRequest, context) -> pb.ModelReadyResponse:
        self._check_version(self._scorer(request.name), request.version)
        return await super().ModelReady(request, context)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context) -> pb.ModelMetadataResponse:
        scorer = self._scorer(request.name)
        self._check_version(scorer, request.version)
        response = await super().ModelMetadata(request, context)
        if scorer is not None:
            response.versions.append(scorer.card.version)
        return response

    async def ModelInfer(self, request: pb.ModelInferRequest, context) -> pb.ModelInferResponse:
        _answer_with_request_id(context)
        try:
            model = self._data_plane.get_model_from_registry(request.model_name)
        except ModelNotFound:
            # Counted, with a request line (gRPC has no access log); key or not, as REST answers it 404 before any
            # key check.
            error = NotServed.model(request.model_name)
            served = self._served_scorer()
            if served is not None:
                served.fail(ScoringRequest.from_headers("grpc", to_headers(context)), error)
            raise grpc_error(error) from None
        scorer = model.scorer if isinstance(model, LeadScoringModel) else None
        if scorer is not None:
            headers = to_headers(context)
            if request.model_version and request.model_version != scorer.card.version:
                raise grpc_error(refusal(scorer, request.model_version, headers, "grpc"))
            try:
                for tensor in request.inputs:
                    check_datatype(tensor.name, tensor.datatype)
                # KServe's own check of raw_input_contents, here so that it too comes after the key check.
                self.validate_grpc_request(request)
            except InvalidRequest as error:
                raise grpc_error(_refused(scorer, headers, error)) from None
            except InvalidInput as error:
                raise grpc_error(_refused(scorer, headers, InvalidRequest(str(error)))) from None
        return await super().ModelInfer(request, context)

    def undecodable(self, method: str, request: Undecodable, context) -> Exception:
        """A call whose bytes are not its request message (serving/grpc_handlers.py). ModelInfer hears the key check
        first, as REST does with a body it cannot parse; the open methods are answered INVALID_ARGUMENT."""
        error = InvalidRequest(request.refusal())
        if method == "ModelInfer":
            scorer = self._served_scorer()
            if scorer is not None:
                return grpc_error(_refused(scorer, to_headers(context), error))
        return grpc_error(error)

    def _served_scorer(self) -> Scorer | None:
        """The scorer of the model this server serves (one per server), for refusals that name no model of ours."""
        return next(
            (
                model.scorer
                for model in self._data_plane.model_registry.get_models().values()
                if isinstance(model, LeadScoringModel)
            ),
            None,
        )


class _Metadatum(NamedTuple):
    """A metadata pair as grpc hands them to a servicer: KServe's to_headers() reads `.key` and `.value`, of the
    invocation metadata and of the trailing metadata set so far."""

    key: str
    value: str


def _answer_with_request_id(context) -> None:
    """REST answers every request with its x-request-id header; over gRPC it is trailing metadata, which goes with
    an error status as with an answer. A call that sent none gets a server-made id here, which every later reader of
    the call's metadata (to_headers merges trailing metadata in) takes as the call's own, so the id the client
    receives is the one in the request line and the lake. An id that breaks the rule is refused downstream, and
    is not echoed."""
    sent = next((m.value for m in context.invocation_metadata() or () if m.key == request_ids.HEADER), None)
    if sent and not (isinstance(sent, str) and request_ids.valid(sent)):
        return
    context.set_trailing_metadata((_Metadatum(request_ids.HEADER, sent or request_ids.new_request_id()),))


def _refused(scorer: Scorer, headers: dict, error: InvalidRequest) -> ScoringError:
    """A request refused before KServe parses it: without a valid key that is the answer, else `error`; counted
    and logged either way, as the Scorer counts its own refusals."""
    request = ScoringRequest.from_headers("grpc", headers)
    try:
        request.key = scorer.keys.authenticate(headers.get("x-api-key"))
    except ScoringError as unauthorized:
        return scorer.fail(request, unauthorized)
    return scorer.refuse_keyed(request, error)


def install() -> None:
    """KServe's GRPCServer builds its servicer and registers its handlers through these module attributes when the
    server starts."""
    kserve_grpc_server.InferenceServicer = LeadScoringServicer
    kserve_grpc_server.grpc_predict_v2_pb2_grpc = SimpleNamespace(
        add_GRPCInferenceServiceServicer_to_server=grpc_handlers.add_to_server
    )
