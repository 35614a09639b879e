"""The gRPC server: servicers, health, reflection, size caps, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
import inference
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from mlops import names
from mlops.v1 import (
    model_service_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2,
    prediction_service_pb2_grpc,
    training_service_pb2,
    training_service_pb2_grpc,
)

from ml_service import kinds, memory
from ml_service.config import Settings
from ml_service.core import ModelServiceCore
from ml_service.grpc.auth import BearerTokenInterceptor
from ml_service.grpc.inference import InferenceServicer
from ml_service.grpc.servicers import ModelServicer, PredictionServicer, TrainingServicer
from ml_service.metrics import MetricsServer
from ml_service.open_inference import OpenInference
from ml_service.store.database import SchemaTooNew
from ml_service.store.errors import StoreInUse, StoreRefused, StoreUnreachable

log = logging.getLogger(__name__)

READINESS = names.READINESS_SERVICE
LIVENESS = names.LIVENESS_SERVICE
SERVICE_NAMES = (
    model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name,
    training_service_pb2.DESCRIPTOR.services_by_name["TrainingService"].full_name,
    prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"].full_name,
    inference.SERVICE_NAME,
)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# How often a store that did not answer at start is tried again.
OPEN_RETRY_SECONDS = 1.0
# How often readiness asks the database whether it still answers (one `SELECT 1`).
READINESS_CHECK_SECONDS = 1.0


class Server:
    """A gRPC server over a core it is given; it opens the core on start, closes it on stop."""

    def __init__(self, settings: Settings, core: ModelServiceCore) -> None:
        self.settings = settings
        self.core = core
        self.health = health.aio.HealthServicer()
        options = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
        interceptors = (
            [BearerTokenInterceptor(settings.tokens, core.telemetry)] if settings.tokens else []
        )
        self._server = grpc.aio.server(options=options, interceptors=interceptors)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            ModelServicer(self.core), self._server
        )
        training_service_pb2_grpc.add_TrainingServiceServicer_to_server(
            TrainingServicer(self.core), self._server
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(self.core), self._server
        )
        inference.add_servicer(InferenceServicer(OpenInference(self.core)), self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        if settings.reflection:
            names = (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME)
            pool = inference.ReflectionPool()
            reflection.enable_server_reflection(names, self._server, pool=pool)
        self.port = 0
        self.metrics: MetricsServer | None = None
        self._preload: asyncio.Future[None] | None = None
        # Opening the store late, then following the database; cancelled on stop.
        self._background: asyncio.Future[None] | None = None
        #: Why the store opened late can never open (set with `gave_up`): an unready process
        #: that lives on would hide it, so the process ends with it as it would at start.
        self.cannot_open: SchemaTooNew | StoreInUse | StoreRefused | None = None
        self.gave_up = asyncio.Event()

    async def start(self) -> None:
        """Listen, then open the store; readiness turns SERVING once the store is open.

        A database or object store that does not answer yet is not fatal: start returns
        with readiness NOT_SERVING and the store is opened in the background once it answers.
        """
        address = f"{self.settings.host}:{self.settings.port}"
        try:
            credentials = server_credentials(self.settings)
            if credentials is None:
                self.port = self._server.add_insecure_port(address)
            else:
                self.port = self._server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {address}: is the port in use?") from exc
        if self.settings.metrics_port:
            registry = self.core.telemetry.metrics.registry
            self.metrics = MetricsServer(registry, self.settings.host, self.settings.metrics_port)
        await self.health.set(READINESS, NOT_SERVING)
        await self.health.set(LIVENESS, SERVING)
        await self.health.set("", SERVING)
        await self._server.start()
        auth = "on" if self.settings.tokens else "off"
        log.info(
            "listening on %s:%d (auth %s, TLS %s)",
            self.settings.host,
            self.port,
            auth,
            self.settings.tls_mode,
            extra={
                "address": f"{self.settings.host}:{self.port}",
                "auth": auth,
                "tls": self.settings.tls_mode,
            },
        )
        try:
            await self.core.open()
        except StoreRefused:
            raise  # a setting to correct (no such database, a wrong password): waiting won't
        except StoreUnreachable as exc:
            # Not fatal: the process lives, says why it is not ready, and opens the store as
            # soon as it answers, so an orchestrator need not restart it in a loop.
            log.warning(
                "not ready: %s (%s); retrying every %g s",
                exc.message.removesuffix("; retry shortly"),
                exc.reason,
                OPEN_RETRY_SECONDS,
            )
            self._background = asyncio.ensure_future(self._open_when_reachable())
            return
        await self._ready()

    async def _open_when_reachable(self) -> None:
        """Retry opening the store until it answers, then turn ready."""
        while True:
            await asyncio.sleep(OPEN_RETRY_SECONDS)
            opening = asyncio.ensure_future(self.core.open())
            try:
                await asyncio.shield(opening)
            except asyncio.CancelledError:
                # Stopping mid-open: let the open finish, so stop() closes what it opened
                # instead of leaving a store's connections and lock behind.
                with contextlib.suppress(Exception):
                    await opening
                raise
            except (SchemaTooNew, StoreInUse, StoreRefused) as exc:
                # Before StoreUnreachable: a store that answers at last and refuses the
                # settings (no such database, a wrong password) needs an operator, not time.
                log.error("the store cannot be opened: %s", exc)
                self.cannot_open = exc
                self.gave_up.set()
                return
            except StoreUnreachable as exc:
                log.debug("store still unreachable: %s", exc.reason)
                continue
            except Exception:
                # Nothing foreseen: waiting will not mend it, and its traceback is for us.
                log.exception("the store cannot be opened; readiness stays NOT_SERVING")
                return
            await self._ready()
            return

    async def _ready(self) -> None:
        """Turn readiness on and keep it following the database."""
        for name in (READINESS, *SERVICE_NAMES):
            await self.health.set(name, SERVING)
        # Load the ML libraries after readiness: start-up stays fast, first predictions too.
        # The store is open, so the training forkserver has started: it keeps the default.
        memory.purge_freed_pages_at_once()
        self._preload = asyncio.ensure_future(asyncio.to_thread(kinds.preload))
        log.info("ready", extra={"data_dir": str(self.settings.data_dir)})
        self._background = asyncio.ensure_future(self._follow_database())

    async def _follow_database(self) -> None:
        """Readiness follows the database: NOT_SERVING while it is lost, SERVING once back."""
        reachable = True
        while True:
            await asyncio.sleep(READINESS_CHECK_SECONDS)
            try:
                await asyncio.to_thread(self.core.store.ping)
            except Exception as exc:
                # Whatever stops `SELECT 1` stops the calls that need the database too.
                if reachable:
                    why = (
                        f"{exc.message} ({exc.reason})"
                        if isinstance(exc, StoreUnreachable)
                        else exc
                    )
                    log.warning("not ready: %s", why)
                    await self.health.set(READINESS, NOT_SERVING)
                reachable = False
                continue
            if not reachable:
                log.info("ready again: the metadata database answers")
                await self.health.set(READINESS, SERVING)
            reachable = True

    async def preloaded(self) -> None:
        """Wait until the ML libraries have loaded (or failed to; stop reports that)."""
        if self._preload is not None:
            await asyncio.wait([self._preload])

    async def stop(self, grace: float | None = None) -> None:
        """Turn readiness off, let running calls finish within the grace, then close."""
        await self.health.enter_graceful_shutdown()
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background
        grace = self.settings.grace_seconds if grace is None else grace
        await self._server.stop(grace)
        if self._preload is not None:
            await self._preload
        await self.core.close()
        if self.metrics is not None:
            await asyncio.to_thread(self.metrics.close)
        log.info("stopped")

    async def wait(self) -> None:
        """Block until the server stops."""
        await self._server.wait_for_termination()


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials when a certificate is configured; mutual TLS with a client CA."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    pair = (settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())
    client_ca = settings.tls_client_ca_file
    return grpc.ssl_server_credentials(
        [pair],
        root_certificates=client_ca.read_bytes() if client_ca else None,
        require_client_auth=client_ca is not None,
    )


async def start_server(settings: Settings, core: ModelServiceCore | None = None) -> Server:
    """Build, start and return a server over `core` (by default one built from the settings)."""
    server = Server(settings, core or ModelServiceCore(settings))
    await server.start()
    return server
