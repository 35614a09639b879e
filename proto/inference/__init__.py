"""The Open Inference Protocol (KServe V2): messages, servicer registration, client stub.

tritonclient and MLServer register their own copies of package `inference` in protobuf's
default descriptor pool, and a second copy there makes importing either in the same process
fail with "duplicate symbol". So the compiled descriptor (`python proto/generate.py` writes
grpc_predict_v2.binpb) goes into a pool of its own, and the message classes, the handlers
and the stub are built from it instead of from protoc's Python output.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

POOL = descriptor_pool.DescriptorPool()
_compiled = descriptor_pb2.FileDescriptorSet.FromString(
    resources.files(__name__).joinpath("grpc_predict_v2.binpb").read_bytes()
)
DESCRIPTOR = POOL.AddSerializedFile(_compiled.file[0].SerializeToString())
SERVICE = DESCRIPTOR.services_by_name["GRPCInferenceService"]
#: "inference.GRPCInferenceService", for health and reflection.
SERVICE_NAME: str = SERVICE.full_name


def _message(name: str) -> Any:
    return message_factory.GetMessageClass(DESCRIPTOR.message_types_by_name[name])


ServerLiveRequest = _message("ServerLiveRequest")
ServerLiveResponse = _message("ServerLiveResponse")
ServerReadyRequest = _message("ServerReadyRequest")
ServerReadyResponse = _message("ServerReadyResponse")
ModelReadyRequest = _message("ModelReadyRequest")
ModelReadyResponse = _message("ModelReadyResponse")
ServerMetadataRequest = _message("ServerMetadataRequest")
ServerMetadataResponse = _message("ServerMetadataResponse")
ModelMetadataRequest = _message("ModelMetadataRequest")
ModelMetadataResponse = _message("ModelMetadataResponse")
ModelInferRequest = _message("ModelInferRequest")
ModelInferResponse = _message("ModelInferResponse")
InferParameter = _message("InferParameter")
InferTensorContents = _message("InferTensorContents")


def _codecs(method: Any) -> tuple[Any, Any]:
    request = message_factory.GetMessageClass(method.input_type)
    response = message_factory.GetMessageClass(method.output_type)
    return request, response


def add_servicer(servicer: Any, server: grpc.aio.Server) -> None:
    """Serve `servicer`'s coroutine methods, one per RPC of GRPCInferenceService."""
    handlers = {}
    for method in SERVICE.methods:
        request, response = _codecs(method)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name),
            request_deserializer=request.FromString,
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


class GRPCInferenceServiceStub:
    """A client of GRPCInferenceService: one callable attribute per RPC."""

    def __init__(self, channel: Any) -> None:
        for method in SERVICE.methods:
            request, response = _codecs(method)
            call = channel.unary_unary(
                f"/{SERVICE_NAME}/{method.name}",
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
            )
            setattr(self, method.name, call)


class ReflectionPool:
    """Find descriptors in this protocol's pool, then in the default pool (mlops.v1, health).

    Server reflection reads one pool; this one answers for both.
    """

    def __init__(self) -> None:
        self._pools = (POOL, descriptor_pool.Default())

    def __getattr__(self, name: str) -> Any:
        def find(*args: Any) -> Any:
            for pool in self._pools[:-1]:
                try:
                    return getattr(pool, name)(*args)
                except KeyError:
                    continue
            return getattr(self._pools[-1], name)(*args)

        return find

    def FindAllExtensions(self, message: Any) -> list[Any]:
        """Extensions of a message, from whichever pool holds it."""
        return list(message.file.pool.FindAllExtensions(message))
