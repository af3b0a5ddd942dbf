"""The gRPC server: Dragoman service, standard health and reflection, model loading, shutdown."""

import asyncio
import gc
import logging
import os
import signal
import threading
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dragoman.v1 import dragoman_pb2, dragoman_pb2_grpc

from . import detection, tracing
from .admission import Admission
from .continuous import bound_kernel_caches
from .dataplane import DataPlane
from .interceptors import CallInterceptor
from .metrics import Metrics
from .registry import ModelRegistry
from .servicer import DragomanServicer
from .settings import Config
from .tls import server_credentials

log = logging.getLogger(__name__)

SERVICE_NAME = dragoman_pb2.DESCRIPTOR.services_by_name["Dragoman"].full_name


class DragomanServer:
    """One server, constructed inside its event loop: call `start()`, then `wait_until_ready()` / `wait_for_termination()`, `stop()`."""

    def __init__(self, config: Config, interceptors: Sequence[grpc.aio.ServerInterceptor] = ()):
        self.config = config
        settings = config.server
        origin = getattr(config, "origin", lambda name: name)
        # Files first (API keys, TLS): a bad one is a ConfigError before anything is built.
        self.admission = Admission.from_config(config)
        self._credentials = server_credentials(settings, origin)
        self.metrics = Metrics()
        self.registry = ModelRegistry(config, observer=self.metrics.observe_batch)
        self.metrics.watch(self.registry)
        self.dataplane = DataPlane(config, self.registry)
        self.metrics.watch_dataplane(self.dataplane)
        self.health = health.aio.HealthServicer()
        max_bytes = settings.max_message_bytes
        self.server = grpc.aio.server(
            interceptors=[*interceptors, CallInterceptor(self.admission, self.metrics)],
            options=[
                # The limit is the admission layer's (INVALID_ARGUMENT MESSAGE_TOO_LARGE, counted
                # and logged); grpc's own, a bare RESOURCE_EXHAUSTED, is a backstop at twice it.
                ("grpc.max_receive_message_length", min(2 * max_bytes, 2**31 - 1)),
                ("grpc.max_send_message_length", max_bytes),
                ("grpc.so_reuseport", 0),
            ],
            # The limit itself is the admission layer's (a status with RetryInfo, counted and
            # logged); grpc's own, which answers bare RESOURCE_EXHAUSTED, is only a backstop.
            maximum_concurrent_rpcs=4 * settings.max_concurrent_requests + 64,
        )
        self.servicer = DragomanServicer(self.dataplane, charge=self.admission.charge)
        dragoman_pb2_grpc.add_DragomanServicer_to_server(self.servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        self.port: int | None = None
        self._loading: asyncio.Task | None = None
        self._froze_heap = False
        self._ready = asyncio.Event()
        self._serving = False
        self._stopping = False
        self.http = self._http_server() if settings.http else None

    @property
    def http_port(self) -> int | None:
        """The HTTP port once started (None when `http` is off)."""
        return self.http.port if self.http else None

    def _http_server(self):
        # Imported here: aiohttp is needed only when the HTTP face is on.
        from .http.app import HealthView, HttpContext, HttpServer

        return HttpServer(
            HttpContext(
                dataplane=self.dataplane,
                admission=self.admission,
                metrics=self.metrics,
                settings=self.config.server,
                health=HealthView(
                    serving=lambda: self._serving,
                    shutting_down=lambda: self._stopping,
                    registry=self.registry,
                ),
                servicer=self.servicer,
            )
        )

    @property
    def address(self) -> str:
        return f"{self.config.server.host}:{self.port}"

    async def start(self) -> int:
        """Listen (health NOT_SERVING) and start loading models in the background; returns the port."""
        settings = self.config.server
        _set_threads(settings.threads)
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        host = settings.host
        bind = f"[{host}]:{settings.port}" if ":" in host else f"{host}:{settings.port}"
        try:
            if self._credentials is None:
                self.port = self.server.add_insecure_port(bind)
            else:
                self.port = self.server.add_secure_port(bind, self._credentials)
        except RuntimeError:  # grpc: "Failed to bind to address ..." (in use, or no such host)
            self.port = None
        if not self.port:
            raise OSError(f"cannot listen on {bind}: the port is in use or the host is not local")
        await self.server.start()
        if self.http is not None:
            try:
                await self.http.start()
            except OSError:
                await self.server.stop(0)
                raise
        if settings.metrics_port:
            self.metrics.serve(host, settings.metrics_port)
        auth = self.admission.authenticator
        log.info(
            "listening on %s:%d (%s; %s)",
            host,
            self.port,
            "mutual TLS" if settings.tls_client_ca else "TLS" if self._credentials else "plaintext",
            f"authentication ON: {len(auth.hashes)} API key(s) accepted"
            if auth
            else "authentication OFF: no api_keys or api_keys_file, every caller is accepted",
        )
        self._loading = asyncio.create_task(self._load())
        return self.port

    async def _load(self) -> None:
        await asyncio.to_thread(detection.load)
        await self.registry.load_all()
        await asyncio.to_thread(_freeze_heap)
        self._froze_heap = True
        if self.registry.any_ready:
            self._serving = not self._stopping
            for name in ("", SERVICE_NAME):
                await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
            log.info("serving")
        else:
            log.error("no model could be loaded; health stays NOT_SERVING")
        self._ready.set()

    async def wait_until_ready(self, timeout: float | None = None) -> bool:
        """Wait for loading to finish; True when at least one model is ready."""
        await asyncio.wait_for(self._ready.wait(), timeout)
        return self.registry.any_ready

    async def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING at once, refuse new calls, let in-flight ones finish within grace."""
        self._stopping = True
        self._serving = False
        await self.health.enter_graceful_shutdown()
        grace = self.config.server.grace_period_s if grace is None else grace
        stopping = [self.server.stop(grace)]
        if self.http is not None:
            stopping.append(self.http.stop(grace))
        await asyncio.gather(*stopping)
        if self._loading and not self._loading.done():
            self._loading.cancel()
        self.metrics.close()
        await asyncio.to_thread(self.registry.close)
        if self._froze_heap:
            self._froze_heap = False
            _thaw_heap()

    async def wait_for_termination(self) -> None:
        await self.server.wait_for_termination()


# Servers of this process whose heap freeze holds (tests and embedders may run several).
_frozen_by = 0
_frozen_lock = threading.Lock()


def _freeze_heap() -> None:
    """Move everything alive after loading (torch, transformers, the models: millions of
    objects) out of the collector's reach. Otherwise every full collection walks them all,
    holding the GIL for hundreds of milliseconds in whichever thread allocates, and every call
    stalls, health checks included (bench/health.py measures it)."""
    global _frozen_by
    with _frozen_lock:
        gc.collect()
        gc.freeze()
        _frozen_by += 1


def _thaw_heap() -> None:
    """Undo `_freeze_heap` once the last server that froze it has stopped (so that a stopped
    server's models can be collected)."""
    global _frozen_by
    with _frozen_lock:
        if _frozen_by == 0:
            return
        _frozen_by -= 1
        if _frozen_by == 0:
            gc.unfreeze()


def _set_threads(threads: int) -> None:
    import torch

    wanted = threads or os.cpu_count() or 1
    # Changing the pool while another server's worker is inside an op can crash the process.
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)


async def serve(config: Config) -> int:
    """Run until SIGTERM/SIGINT, then shut down gracefully; the exit code."""
    if tracing.setup(config.server):
        log.info("tracing: exporting spans over OTLP")
    try:
        return await _serve(config)
    finally:
        await asyncio.to_thread(tracing.shutdown)  # flushes the last spans


async def _serve(config: Config) -> int:
    bound_kernel_caches()  # before any model runs
    server = DragomanServer(config)
    await server.start()
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("shutting down: in-flight calls have %.0fs", config.server.grace_period_s)
    stop = asyncio.ensure_future(server.stop())

    def again() -> None:  # a second signal: cancel what is left and exit now
        log.warning("second signal: cancelling in-flight calls")
        asyncio.ensure_future(server.server.stop(0))
        if server.http is not None:
            server.http.abort()

    for sig in signals:
        loop.add_signal_handler(sig, again)
    await stop
    log.info("stopped")
    return 0


async def _create(config: Config) -> DragomanServer:
    # grpc.aio binds a server to the running loop at construction.
    return DragomanServer(config)


class BackgroundServer:
    """A server on its own event loop in a thread: for tests and for embedding in sync programs."""

    def __init__(self, config: Config, ready_timeout: float = 120.0):
        self.config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="dragoman-server", daemon=True
        )
        self._thread.start()
        self.server: DragomanServer = self._call(_create(config))
        self.port = self._call(self.server.start())
        self.address = f"{config.server.host}:{self.port}"
        self.http_port: int | None = self.server.http_port
        self.ready = self._call(self.server.wait_until_ready(ready_timeout))

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def stop(self, grace: float | None = 0) -> None:
        if self._loop.is_closed():
            return
        self._call(self.server.stop(grace))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> "BackgroundServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
