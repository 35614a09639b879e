"""The REST gateway as the UI sees it: typed calls over an httpx.Client passed in.

Exception
└── GatewayError          the gateway answered with a problem (its `detail` is for people)
    └── GatewayUnreachable  no answer at all: refused, timed out, or the connection broke
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from ui.schemas import Job, ModelKind, ModelVersion, PredictResponse, Problem
from ui.schemas import Model as ModelInfo

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
# The gateway comments an event stream every 15 s, so a minute of silence means it is gone.
EVENT_READ_SECONDS = 60.0
PAGE_SIZE = 200
MESSAGE_CHARS = 600


class GatewayError(Exception):
    """The gateway refused a request; `message` says why in plain words."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The problem's detail, plus any field errors it does not already name."""
        problem = self.problem
        text = problem.detail or problem.title or f"The gateway answered {problem.status}."
        extra = [
            f"{e.field}: {e.description}"
            for e in problem.errors
            if f"{e.field}: {e.description}" not in text
        ]
        message = " ".join([text.rstrip(".") + ".", *(f"{item}." for item in extra)])
        if len(message) > MESSAGE_CHARS:
            # A long list of violations (every column of a wrong file) buries the first,
            # which usually says it all; the gateway's log keeps the rest.
            message = message[:MESSAGE_CHARS].rsplit(" ", 1)[0] + " …"
        return message


class GatewayUnreachable(GatewayError):
    """No answer from the gateway."""

    def __init__(self, url: str, reason: str) -> None:
        detail = (
            f"The gateway at {url} is not reachable ({reason}). Check that it is running; "
            "this page keeps working once it is back."
        )
        super().__init__(Problem(status=0, title="Gateway unreachable", detail=detail))


def _problem(response: httpx.Response) -> GatewayError:
    """Read a problem+json body; a proxy's HTML error page still gives a plain message."""
    try:
        problem = Problem.model_validate_json(response.content)
    except ValidationError:
        phrase = response.reason_phrase or "error"
        problem = Problem(
            status=response.status_code,
            detail=f"The gateway answered {response.status_code} {phrase}.",
        )
    if not problem.request_id:
        # A proxy's page has no body member, but the gateway's header may have come through.
        problem.request_id = response.headers.get("x-request-id", "")
    return GatewayError(problem)


def _sse(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """Yield (event, data) pairs of a text/event-stream; comments (pings) are skipped."""
    event, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
    if data:
        yield event, "\n".join(data)


def _form(fields: Mapping[str, Any]) -> dict[str, str]:
    """Encode spec fields as multipart form fields; dicts and lists travel as JSON text."""
    return {
        key: json.dumps(value) if isinstance(value, dict | list | bool) else str(value)
        for key, value in fields.items()
        if value is not None
    }


class GatewayClient:
    """Typed calls to the gateway; every failure becomes a GatewayError."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    @property
    def url(self) -> str:
        """The gateway's base URL, for messages."""
        return str(self._http.base_url).rstrip("/")

    def _unreachable(self, error: httpx.TransportError) -> GatewayUnreachable:
        log.warning("gateway %s unreachable: %r", self.url, error)
        if isinstance(error, httpx.TimeoutException):
            reason = "no answer in time"
        elif isinstance(error, httpx.ConnectError):
            reason = "could not connect"
        else:
            reason = "the connection broke"
        return GatewayUnreachable(self.url, reason)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise self._unreachable(error) from None
        if response.is_error:
            log.info("%s %s -> %d", method, path, response.status_code)
            raise _problem(response)
        return response

    def _parse(self, model: type[M], content: bytes | str, what: str) -> M:
        try:
            return model.model_validate_json(content)
        except ValidationError:
            log.exception("unexpected answer to %s", what)
            raise GatewayError(
                Problem(detail=f"The gateway's answer to {what} was not understood.")
            ) from None

    def _get(self, model: type[M], path: str, **params: Any) -> M:
        response = self._send("GET", path, params=params or None)
        return self._parse(model, response.content, f"GET {path}")

    def ready(self) -> None:
        """Return when the gateway and the model service behind it are ready, else raise."""
        self._send("GET", "/readyz")

    def kinds(self) -> list[ModelKind]:
        """List the model kinds with their hyperparameter specs."""
        return self._get(_KindList, "/v1/kinds").kinds

    def models(self) -> list[ModelInfo]:
        """List every model, newest first (all pages)."""
        models: list[ModelInfo] = []
        token = ""
        while True:
            page = self._get(_ModelList, "/v1/models", page_size=PAGE_SIZE, page_token=token)
            models += page.models
            token = page.next_page_token
            if not token:
                return models

    def versions(self, model_id: str) -> list[ModelVersion]:
        """List a model's versions, newest first (all pages)."""
        versions: list[ModelVersion] = []
        token = ""
        path = f"/v1/models/{model_id}/versions"
        while True:
            page = self._get(_VersionList, path, page_size=PAGE_SIZE, page_token=token)
            versions += page.versions
            token = page.next_page_token
            if not token:
                return versions

    def version(self, model_id: str, version: int) -> ModelVersion:
        """Get one version."""
        return self._get(ModelVersion, f"/v1/models/{model_id}/versions/{version}")

    def model(self, model_id: str) -> ModelInfo:
        """Get one model."""
        return self._get(ModelInfo, f"/v1/models/{model_id}")

    def job(self, job_id: str) -> Job:
        """Get a training job."""
        return self._get(Job, f"/v1/jobs/{job_id}")

    def jobs(self, page_size: int = 50) -> list[Job]:
        """List the newest jobs, newest first (one page: the Jobs tab shows recent ones)."""
        return self._get(_JobList, "/v1/jobs", page_size=page_size).jobs

    def train(self, csv_path: Path, spec: Mapping[str, Any]) -> Job:
        """Upload a CSV with a training spec; return the queued job."""
        with csv_path.open("rb") as file:
            files = {"file": (csv_path.name, file, "text/csv")}
            response = self._send("POST", "/v1/jobs", data=_form(spec), files=files)
        return self._parse(Job, response.content, "POST /v1/jobs")

    def retrain(self, model_id: str, csv_path: Path | None, spec: Mapping[str, Any]) -> Job:
        """Start the next version of a model, on a new CSV or (None) the parent's data."""
        path = f"/v1/models/{model_id}/retrain"
        if csv_path is None:
            response = self._send("POST", path, json=dict(spec))
        else:
            with csv_path.open("rb") as file:
                files = {"file": (csv_path.name, file, "text/csv")}
                response = self._send("POST", path, data=_form(spec), files=files)
        return self._parse(Job, response.content, f"POST {path}")

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job."""
        path = f"/v1/jobs/{job_id}/cancel"
        return self._parse(Job, self._send("POST", path).content, f"POST {path}")

    def events(self, job_id: str) -> Iterator[Job]:
        """Follow a job through its Server-Sent Events until it ends."""
        timeout = httpx.Timeout(self._http.timeout.connect, read=EVENT_READ_SECONDS)
        path = f"/v1/jobs/{job_id}/events"
        headers = {"Accept": "text/event-stream"}
        try:
            with self._http.stream("GET", path, headers=headers, timeout=timeout) as response:
                if response.is_error:
                    response.read()
                    raise _problem(response)
                for event, data in _sse(response.iter_lines()):
                    if event == "error":
                        raise GatewayError(self._parse(Problem, data, f"GET {path}"))
                    yield self._parse(Job, data, f"GET {path}")
        except httpx.TransportError as error:
            raise self._unreachable(error) from None

    def predict(self, model_id: str, version: int, csv: bytes) -> PredictResponse:
        """Predict the rows of a CSV with one version (0: the latest)."""
        path = f"/v1/models/{model_id}/predict"
        response = self._send(
            "POST",
            path,
            params={"version": version},
            files={"file": ("rows.csv", csv, "text/csv")},
            headers={"Accept": "application/json"},
        )
        return self._parse(PredictResponse, response.content, f"POST {path}")

    def delete_model(self, model_id: str) -> int:
        """Delete a model with all its versions; return how many versions went."""
        path = f"/v1/models/{model_id}"
        return self._parse(_DeletedModel, self._send("DELETE", path).content, path).deleted_versions

    def delete_version(self, model_id: str, version: int) -> bool:
        """Delete one version; return True when that deleted the model too."""
        path = f"/v1/models/{model_id}/versions/{version}"
        return self._parse(_DeletedVersion, self._send("DELETE", path).content, path).model_deleted


class _KindList(BaseModel):
    kinds: list[ModelKind]


class _ModelList(BaseModel):
    models: list[ModelInfo]
    next_page_token: str = ""


class _JobList(BaseModel):
    jobs: list[Job]


class _DeletedModel(BaseModel):
    deleted_versions: int


class _DeletedVersion(BaseModel):
    model_deleted: bool


class _VersionList(BaseModel):
    versions: list[ModelVersion]
    next_page_token: str = ""
