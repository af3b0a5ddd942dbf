"""A Dragoman server in its own process for the benchmark: `python -m bench.server CONFIG.json [--echo]`.

Prints `PORT <n>` (with `HTTP <m>` when the config turns `http` on) once every model is ready, then serves until stdin closes. With --echo, every
model's engine is replaced by `EchoEngine` (injected here, by patching the registry's loader: no
benchmark branch in production code). With --no-heap-freeze, the server skips `gc.freeze()` after
loading (patched out here too), to measure what the freeze is for."""

import asyncio
import json
import sys
from collections.abc import Sequence

from dragoman_server import registry
from dragoman_server import server as server_module
from dragoman_server.engines.base import Engine, Generated, GenerationParams, ShouldStop
from dragoman_server.server import DragomanServer
from dragoman_server.settings import Config


class EchoEngine(Engine):
    """Returns its input: measures everything but the model."""

    backend = "echo"
    device = "cpu"

    def __init__(self, config, settings=None):
        self.name = config.name
        self.task = config.task

    @property
    def max_input_tokens(self) -> int:
        return 512

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) + 1 for t in texts]

    def generate(
        self, texts: Sequence[str], params: GenerationParams, should_stop: ShouldStop | None = None
    ) -> list[Generated]:
        return [Generated(t, len(t.split()) + 1, len(t.split()) + 1) for t in texts]


async def _main(config: Config) -> None:
    server = DragomanServer(config)
    await server.start()
    if not await server.wait_until_ready(600):
        print("FAILED", flush=True)
        return
    http = f" HTTP {server.http_port}" if server.http_port else ""
    print(f"PORT {server.port}{http}", flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin
    await server.stop(0)


if __name__ == "__main__":
    data = json.loads(open(sys.argv[1]).read())
    if "--echo" in sys.argv:
        registry.load_engine = EchoEngine
    if "--no-heap-freeze" in sys.argv:
        server_module._freeze_heap = lambda: None
    asyncio.run(_main(Config.from_dict(data)))
