"""Problem details (RFC 9457): the one table from gRPC codes to HTTP, and the handlers.

Exception
├── ProblemError          raised by the gateway itself; carries status, detail, violations
├── grpc.aio.AioRpcError  a failed call; mapped through STATUS_OF
├── RequestValidationError / HTTPException   FastAPI and Starlette; rendered the same way
└── anything else         500 "internal error"; the traceback is logged, never sent
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from http import HTTPStatus

import grpc
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from google.rpc import error_details_pb2, status_pb2
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlops_client.errors import why_unreachable
from rest_gateway.request_ids import REQUEST_ID

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
#: Where the Open Inference Protocol's REST API is served (rest_gateway.routes.open_inference).
V2_PREFIX = "/v2"
DETAILS_KEY = "grpc-status-details-bin"

# gRPC code -> (HTTP status, problem title). RESOURCE_EXHAUSTED is 413 unless the service
# says when to retry (RetryInfo) or names a quota (QuotaFailure): then it is 429; or its
# ErrorInfo says the disk is full (STATUS_OF_REASON): then it is 507.
STATUS_OF: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "Invalid argument"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "Out of range"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "Unauthenticated"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "Permission denied"),
    grpc.StatusCode.NOT_FOUND: (404, "Not found"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "Already exists"),
    grpc.StatusCode.ABORTED: (409, "Aborted"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "Failed precondition"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (413, "Resource exhausted"),
    grpc.StatusCode.UNIMPLEMENTED: (501, "Not implemented"),
    grpc.StatusCode.UNAVAILABLE: (503, "Service unavailable"),
    grpc.StatusCode.CANCELLED: (503, "Service unavailable"),  # the service gave up the call
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "Deadline exceeded"),
}
INTERNAL = (500, "Internal error")
# The service's ErrorInfo reasons that change the HTTP status of their code: RESOURCE_EXHAUSTED
# because the service's disk is full is not the client's request being too large.
STATUS_OF_REASON: dict[str, tuple[int, str]] = {"NO_SPACE": (507, "Insufficient storage")}

# What a client sees when the message did not come from the service's own error table
# (then it may be a transport detail such as an address, which is not for clients).
GENERIC_DETAIL: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.UNAVAILABLE: "The model service is unavailable; try again in a moment.",
    grpc.StatusCode.DEADLINE_EXCEEDED: "The model service did not answer in time.",
    grpc.StatusCode.CANCELLED: "The call to the model service was cancelled.",
    grpc.StatusCode.UNIMPLEMENTED: "The model service does not offer this operation.",
}
CLIENT_FAULT = {code for code, (status, _) in STATUS_OF.items() if status < 500}
# Paths are echoed in problems and logs; a 10 kB id should not be, whole.
SHOWN_PATH_CHARS = 200
CLIMBING = (
    "ids are 1 to 128 letters, digits, '.', '_' or '-': an encoded '/' or '\\' or a '..'"
    " segment is never part of one"
)


class Violation(BaseModel):
    """One problem with one field of the request."""

    field: str = Field(description="Dotted path of the field, e.g. `hyperparameters.depth`.")
    description: str = Field(description="What is wrong with it.")


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    type: str = Field(description="URI naming the problem type.")
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong this time, in words meant for people.")
    instance: str = Field("", description="The request path.")
    code: str = Field(
        description="The gRPC status code name, e.g. `NOT_FOUND`; for errors of the gateway"
        " itself the HTTP status name, e.g. `UNSUPPORTED_MEDIA_TYPE`."
    )
    errors: list[Violation] = Field(default_factory=list, description="Field violations.")
    request_id: str = Field(
        default="",
        description="The request's id (its trace id when tracing), also in the x-request-id"
        " header and in the log lines of the gateway and the service: quote it when reporting.",
    )


class ProblemError(Exception):
    """An error the gateway reports as a problem details response."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str = "",
        title: str = "",
        errors: Sequence[Violation] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or _code_for_status(status)
        self.title = title or HTTPStatus(status).phrase
        self.errors = list(errors)
        self.headers = headers or {}

    def body(self, instance: str = "") -> Problem:
        """Return the problem details object."""
        return Problem(
            type=f"urn:mlops:problem:{self.code.lower().replace('_', '-')}",
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            code=self.code,
            errors=self.errors,
        )

    @classmethod
    def invalid(cls, field: str, description: str) -> ProblemError:
        """Build a 400 with one field violation."""
        return cls(
            400,
            f"{field}: {description}",
            code="INVALID_ARGUMENT",
            title="Invalid argument",
            errors=[Violation(field=field, description=description)],
        )


def _code_for_status(status: int) -> str:
    for code, (mapped, _) in STATUS_OF.items():
        if mapped == status:
            return str(code.name)
    return "INTERNAL" if status >= 500 else HTTPStatus(status).name


def _rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    for key, value in error.trailing_metadata() or ():
        if key == DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None


def from_rpc_error(error: grpc.aio.AioRpcError) -> ProblemError:
    """Map a failed gRPC call to a problem with the one table."""
    code = error.code()
    status, title = STATUS_OF.get(code, INTERNAL)
    rich = _rich_status(error)
    errors: list[Violation] = []
    headers: dict[str, str] = {}
    for any_detail in rich.details if rich is not None else ():
        if any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            any_detail.Unpack(bad_request)
            errors += [
                Violation(field=v.field, description=v.description)
                for v in bad_request.field_violations
            ]
        elif any_detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            any_detail.Unpack(retry)
            status, title = 429, "Too many requests"
            headers["Retry-After"] = str(
                max(1, round(retry.retry_delay.ToTimedelta().total_seconds()))
            )
        elif any_detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            status, title = 429, "Too many requests"
        elif any_detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_detail.Unpack(info)
            status, title = STATUS_OF_REASON.get(info.reason, (status, title))
    if code == grpc.StatusCode.UNAUTHENTICATED:
        headers["WWW-Authenticate"] = "Bearer"  # RFC 9110: a 401 names its scheme
    if rich is not None or code in CLIENT_FAULT:
        detail = error.details() or title
    else:
        detail = GENERIC_DETAIL.get(code, "internal error")
    return ProblemError(status, detail, code=code.name, title=title, errors=errors, headers=headers)


def shown(path: str) -> str:
    """Return a path as problems and logs show it: cut short when it is long."""
    return path if len(path) <= SHOWN_PATH_CHARS else path[:SHOWN_PATH_CHARS] + "..."


def render(problem: ProblemError, instance: str) -> JSONResponse:
    """Render a problem as application/problem+json, or as the V2 protocol's error body."""
    if instance == V2_PREFIX or instance.startswith(f"{V2_PREFIX}/"):
        # tritonclient and KServe clients read only {"error": ...}; a problem's body made
        # them fail on their own KeyError for an unknown route, a 405, a 413 or a 500.
        return JSONResponse(
            {"error": problem.detail}, status_code=problem.status, headers=problem.headers
        )
    body = problem.body(shown(instance))
    body.request_id = REQUEST_ID.get()
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=problem.status,
        headers=problem.headers,
        media_type=PROBLEM_JSON,
    )


def problem_response(request: Request, problem: ProblemError, note: str = "") -> JSONResponse:
    """Log one line for the failed request and render the problem."""
    level = logging.WARNING if problem.status >= 500 else logging.INFO
    log.log(
        level,
        "%s %s -> %d %s%s",
        request.method,
        shown(request.url.path),
        problem.status,
        problem.code,
        f" ({note})" if note else "",
    )
    return render(problem, request.url.path)


async def handle_problem(request: Request, exc: Exception) -> JSONResponse:
    """Render a ProblemError."""
    assert isinstance(exc, ProblemError)
    return problem_response(request, exc)


async def handle_rpc_error(request: Request, exc: Exception) -> JSONResponse:
    """Render a failed gRPC call."""
    assert isinstance(exc, grpc.aio.AioRpcError)
    # The raw details may name addresses; they go to the log, not to the client.
    note = "" if exc.code() in CLIENT_FAULT else f"gRPC said: {exc.details()}"
    if exc.code() is grpc.StatusCode.UNAVAILABLE and (why := unreachable(exc)) is not None:
        # "try again in a moment" to the client; the operator is told what to set.
        note = f"cannot reach the service at {why[0]}: {why[1]}"
    return problem_response(request, from_rpc_error(exc), note)


# The gateway's settings, where the client's words name its flags.
GATEWAY_TLS = {
    "tls_off": "unset MLOPS_GATEWAY_GRPC_TLS and MLOPS_GATEWAY_GRPC_TLS_CA_FILE",
    "roots": "MLOPS_GATEWAY_GRPC_TLS_CA_FILE, or the system's for MLOPS_GATEWAY_GRPC_TLS",
    "tls_on": "MLOPS_GATEWAY_GRPC_TLS=true, or MLOPS_GATEWAY_GRPC_TLS_CA_FILE for a private CA",
}


def unreachable(error: grpc.aio.AioRpcError) -> tuple[str, str] | None:
    """Where the service is and why the gateway cannot reach it, in the operator's words."""
    return why_unreachable(error.details() or "", GATEWAY_TLS)


def _field_of(loc: Sequence[int | str]) -> str:
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else list(loc)
    return ".".join(str(p) for p in parts) or "body"


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """Render request validation errors as a 400 with one violation per error."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        Violation(field=_field_of(e.get("loc", ())), description=str(e.get("msg", "invalid")))
        for e in exc.errors()
    ]
    detail = "; ".join(f"{v.field}: {v.description}" for v in errors) or "invalid request"
    problem = ProblemError(
        400, detail, code="INVALID_ARGUMENT", title="Invalid argument", errors=errors
    )
    return problem_response(request, problem)


def _allowed_methods(request: Request) -> str:
    # Starlette names only the first route that matched the path; list every route's methods.
    path = request.url.path
    routes: list[tuple[re.Pattern[str], set[str]]] = request.app.state.route_methods
    allowed = {m for regex, methods in routes if regex.match(path) for m in methods}
    if "GET" in allowed and takes_head(path):
        allowed.add("HEAD")
    return ", ".join(sorted(allowed))


def takes_head(path: str) -> bool:
    """Whether HEAD is answered as GET on this path (the Open Inference routes keep theirs)."""
    return not path.startswith("/v2/")


def _climbs(request: Request) -> bool:
    # Routing sees the decoded path, so "..%2F..%2Fetc" is three segments and matches no route.
    raw = bytes(request.scope.get("raw_path") or b"").lower()
    return b"%2f" in raw or b"%5c" in raw or ".." in request.url.path.split("/")


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    """Render Starlette's HTTP errors (unknown route, wrong method, ...) as problems."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404 and _climbs(request):
        return problem_response(request, ProblemError.invalid("path", CLIMBING))
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return problem_response(request, ProblemError(exc.status_code, detail, headers=headers))


class UnexpectedErrorMiddleware:
    """Answer 500 "internal error" for any exception that escaped, and log its traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; on an unexpected exception send a 500 problem if nothing was sent."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:
            # Nobody is left to answer; whatever the request started was dropped with it.
            log.info("%s %s -> client disconnected", scope["method"], shown(scope["path"]))
        except Exception:
            if started:
                raise
            log.exception("%s %s -> 500 INTERNAL", scope["method"], shown(scope["path"]))
            problem = ProblemError(500, "internal error", code="INTERNAL")
            await render(problem, scope["path"])(scope, receive, send)
