"""The configured models: loading (off the event loop), warm-up, state, and their batchers."""

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .batcher import Batcher, BatchObserver
from .engines import Engine, GenerationParams, load_engine
from .errors import FailedPrecondition, ModelLoadError, Unavailable
from .instruct_batching import InstructBatcher
from .settings import Config, ModelConfig

log = logging.getLogger(__name__)


class ModelState(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass
class ModelEntry:
    """A configured model and, once loaded, its engine and batcher."""

    config: ModelConfig
    state: ModelState = ModelState.LOADING
    error: str = ""
    engine: Engine | None = None
    batcher: Batcher | InstructBatcher | None = None
    load_seconds: float = 0.0

    @property
    def device(self) -> str:
        return self.engine.device if self.engine else (self.config.device or "")


class ModelRegistry:
    """Holds every configured model; `get` hands out ready ones."""

    def __init__(
        self,
        config: Config,
        *,
        observer: BatchObserver | None = None,
        on_loaded: Callable[[ModelEntry], None] | None = None,
    ):
        self.config = config
        self.entries = {m.name: ModelEntry(m) for m in config.models}
        self.observer = observer
        self.on_loaded = on_loaded

    async def load_all(self) -> None:
        """Load and warm up every model, one at a time (peak memory stays one model's load)."""
        for entry in self.entries.values():
            await self._load(entry)

    async def _load(self, entry: ModelEntry) -> None:
        started = time.perf_counter()
        settings = self.config.server
        try:
            engine = await asyncio.to_thread(load_engine, entry.config, settings)
        except ModelLoadError as exc:
            entry.state, entry.error = ModelState.FAILED, str(exc)
            log.error("%s", exc)
            return
        except Exception as exc:  # any other failure still gets one line, not a traceback
            entry.state = ModelState.FAILED
            entry.error = f"model {entry.config.name!r}: {type(exc).__name__}: {exc}"
            log.error("%s", entry.error)
            return
        entry.engine = engine
        try:
            entry.batcher = self._batcher(engine, entry.config)
        except Exception as exc:  # e.g. a KV cache too small for any request: one line
            entry.state = ModelState.FAILED
            entry.error = (
                str(exc)
                if isinstance(exc, ModelLoadError)
                else f"model {entry.config.name!r}: {type(exc).__name__}: {exc}"
            )
            log.error("%s", entry.error)
            engine.close()
            return
        if settings.warmup:
            try:
                await self._warm_up(entry)
            except Exception as exc:
                entry.state = ModelState.FAILED
                entry.error = f"model {entry.config.name!r}: warm-up failed: {exc}"
                log.error("%s", entry.error)
                return
        entry.load_seconds = time.perf_counter() - started
        entry.state = ModelState.READY
        log.info(
            "model %s ready: %s on %s (%s), %.1fs",
            entry.config.name,
            entry.config.source,
            engine.device,
            engine.backend,
            entry.load_seconds,
        )
        if self.on_loaded:
            self.on_loaded(entry)

    def _batcher(self, engine: Engine, config: ModelConfig) -> Batcher | InstructBatcher:
        """The static batcher for seq2seq models; for instruction models, continuous or static
        batching as the model's `batching` says."""
        settings = self.config.server
        if engine.instruct:

            def instruct(batching: str) -> InstructBatcher:
                return InstructBatcher(
                    engine,
                    batching=batching,
                    max_batch_size=settings.max_batch_size,
                    max_batch_tokens=settings.max_batch_tokens,
                    max_queue_delay_ms=settings.max_queue_delay_ms,
                    max_queue_size=settings.max_queue_size,
                    kv_cache_bytes=config.kv_cache_mb * 2**20,
                    observer=self.observer,
                )

            try:
                return instruct(config.batching)
            except ValueError as exc:  # e.g. sliding-window attention: continuous cannot run it
                log.warning("%s; model %s uses static batching", exc, config.name)
                return instruct("static")
        return Batcher(
            engine,
            max_batch_size=settings.max_batch_size,
            max_batch_tokens=settings.max_batch_tokens,
            max_queue_delay_ms=settings.max_queue_delay_ms,
            max_queue_size=settings.max_queue_size,
            observer=self.observer,
        )

    async def _warm_up(self, entry: ModelEntry) -> None:
        config = entry.config
        if config.task == "translation":
            source, target = config.pairs[0]
            params = GenerationParams(source, target, max_new_tokens=4)
        else:
            params = GenerationParams(config.languages[0], config.languages[0], max_new_tokens=4)
        text = "Warm-up."
        counts = await asyncio.to_thread(entry.engine.count_tokens, [text])
        await entry.batcher.generate([text], counts, params)

    def get(self, name: str) -> ModelEntry:
        """A ready model; else Unavailable (MODEL_LOADING: retry shortly) while it loads, or
        FailedPrecondition (MODEL_FAILED: retrying cannot help) when it failed to load."""
        entry = self.entries[name]
        if entry.state is ModelState.READY:
            return entry
        if entry.state is ModelState.LOADING:
            raise Unavailable(
                f"model {name!r} is still loading; retry shortly",
                reason="MODEL_LOADING",
                metadata={"model": name},
            )
        raise FailedPrecondition(
            f"model {name!r} failed to load: {entry.error}",
            reason="MODEL_FAILED",
            metadata={"model": name},
        )

    @property
    def loaded(self) -> bool:
        """True when no model is loading any more."""
        return all(e.state is not ModelState.LOADING for e in self.entries.values())

    @property
    def any_ready(self) -> bool:
        return any(e.state is ModelState.READY for e in self.entries.values())

    def close(self) -> None:
        for entry in self.entries.values():
            if entry.batcher:
                entry.batcher.close()
            if entry.engine:
                entry.engine.close()
