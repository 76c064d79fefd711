"""The gRPC service's method handlers, with a request deserializer that does not raise.

KServe registers the generated handlers, whose deserializer is the request message's `FromString`. grpcio calls it
before any interceptor or servicer code, and turns its DecodeError into UNKNOWN "Unexpected <class
'google.protobuf.message.DecodeError'>: Error parsing message" plus an ERROR log line with a traceback, for every
call whose bytes are not the method's request message (a wrong client, a proxy speaking another protocol, fuzzing).

Here bytes that do not parse reach the servicer as `Undecodable`, and the call is answered INVALID_ARGUMENT naming
the message type it expected. The handlers are built from the service descriptor KServe ships, so every method is
covered, with KServe's interceptors around them as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

SERVICE = "inference.GRPCInferenceService"


@dataclass(frozen=True)
class Undecodable:
    """What arrived instead of a request message."""

    message_type: str  # the full protobuf name, e.g. inference.ModelInferRequest

    def refusal(self) -> str:
        return f"the request body is not a valid {self.message_type} message (protobuf)"


def _tolerant(message_class) -> Callable[[bytes], object]:
    def deserialize(data: bytes):
        try:
            return message_class.FromString(data)
        except DecodeError:
            return Undecodable(message_class.DESCRIPTOR.full_name)

    return deserialize


def _guarded(servicer, name: str) -> Callable[..., Awaitable]:
    behaviour = getattr(servicer, name)

    async def handle(request, context):
        if isinstance(request, Undecodable):
            raise servicer.undecodable(name, request, context)
        return await behaviour(request, context)

    return handle


def add_to_server(servicer, server) -> None:
    """Stands in for the generated `add_GRPCInferenceServiceServicer_to_server` (same registration calls)."""
    handlers = {}
    for method in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods:
        request_class = getattr(pb, method.input_type.name)
        response_class = getattr(pb, method.output_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _guarded(servicer, method.name),
            request_deserializer=_tolerant(request_class),
            response_serializer=response_class.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
