"""The Open Inference Protocol's use cases over the core: find a model, say if it is ready,
predict. No transport here; ml_service.grpc.inference serves it over gRPC.

A model is addressed by its id, or by its name when exactly one model has that name; an
empty version means the latest.
"""

from __future__ import annotations

import pyarrow as pa

from ml_service.core import ModelServiceCore
from ml_service.errors import InvalidArgument, NotFound, Unavailable
from ml_service.ids import check_id
from ml_service.loaded_model import LoadedModel

_PAGE = 500
#: The store numbers versions as 64-bit integers; no version is above this.
MAX_VERSION = 2**63 - 1


def parse_version(text: str, field: str) -> int:
    """Return the version number in `text`; empty means 0, the latest."""
    if not text:
        return 0
    # isdecimal alone takes any script's digits (Arabic-Indic, full-width); a version is ASCII.
    if not (text.isascii() and text.isdecimal()) or not text.strip("0"):
        raise InvalidArgument.field(
            field, f"{text[:40]!r} is not a version: use 1, 2, ... or leave it empty"
        )
    # Compared as text first: int() refuses over 4,300 digits.
    digits = text.lstrip("0")
    if len(digits) > len(str(MAX_VERSION)) or int(digits) > MAX_VERSION:
        shown = digits if len(digits) <= 40 else digits[:40] + "..."
        raise NotFound(f"no model has a version {shown}: versions go up to {MAX_VERSION}")
    return int(digits)


class OpenInference:
    """Models by id or name, readiness, and predictions, for the V2 protocol."""

    def __init__(self, core: ModelServiceCore) -> None:
        self._core = core

    @property
    def core(self) -> ModelServiceCore:
        """The core these use cases go through."""
        return self._core

    def server_ready(self) -> bool:
        """Whether the store is open, so models can be found and loaded."""
        try:
            self._core.store  # noqa: B018 - the property raises Unavailable until open
        except Unavailable:
            return False
        return True

    async def model(
        self, name: str, version: str, fields: tuple[str, str] = ("model_name", "model_version")
    ) -> LoadedModel:
        """Return the loaded model a V2 request names; NotFound when nothing matches."""
        number = parse_version(version, fields[1])
        if not name:
            raise InvalidArgument.field(fields[0], "is required: a model id or a model's name")
        missing: NotFound | None = None
        if _is_id(name):
            try:
                return await self._load(name, number)
            except NotFound as error:
                missing = error
        model_id = await self._id_named(name, fields[0])
        if model_id is None:
            raise missing or NotFound(
                f"model {name[:80]!r} not found: no model has that id or name"
            )
        return await self._load(model_id, number)

    async def ready(self, name: str, version: str) -> bool:
        """Whether the named version exists and loads."""
        try:
            await self.model(name, version, ("name", "version"))
        except NotFound:
            return False
        return True

    async def predict(self, model: LoadedModel, rows: pa.Table) -> pa.RecordBatch:
        """Predict the rows under the same caps as mlops.v1 Predict."""
        return await self._core.predict_rows(model, rows)

    async def _load(self, model_id: str, version: int) -> LoadedModel:
        return await self._core.prediction_model(model_id, version)

    async def _id_named(self, name: str, field: str) -> str | None:
        matches: list[str] = []
        token = ""
        while True:
            models, token = await self._core.list_models(_PAGE, token)
            matches += [m.model_id for m in models if m.name == name]
            if not token:
                break
        if len(matches) > 1:
            raise InvalidArgument.field(
                field, f"{len(matches)} models are named {name[:80]!r}; address one by its id"
            )
        return matches[0] if matches else None


def _is_id(name: str) -> bool:
    try:
        check_id(name, "name")
    except InvalidArgument:
        return False
    return True
