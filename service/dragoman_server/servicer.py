"""The gRPC servicer: a thin adapter from protobuf to the data plane and back.

Each method validates its request (domain `from_pb`), charges the caller's quota (`charge`, the
admission layer's: only valid requests cost anything), then calls the data plane.
"""

from collections.abc import Callable

from dragoman.v1 import dragoman_pb2 as pb
from dragoman.v1 import dragoman_pb2_grpc as pb_grpc

from .dataplane import DataPlane
from .domain import SummarizeInput, TranslateInput, detect_input
from .registry import ModelEntry, ModelState

_STATES = {
    ModelState.LOADING: pb.MODEL_STATE_LOADING,
    ModelState.READY: pb.MODEL_STATE_READY,
    ModelState.FAILED: pb.MODEL_STATE_FAILED,
}
_TASKS = {"translation": pb.TASK_TRANSLATION, "summarization": pb.TASK_SUMMARIZATION}


def model_info(entry: ModelEntry) -> pb.ModelInfo:
    return pb.ModelInfo(
        name=entry.config.name,
        task=_TASKS[entry.config.task],
        languages=entry.config.languages,
        source=entry.config.source,
        state=_STATES[entry.state],
        error=entry.error,
        backend=entry.config.backend,
        device=entry.device,
    )


class DragomanServicer(pb_grpc.DragomanServicer):
    """Implements dragoman.v1.Dragoman; domain errors are mapped by the error interceptor."""

    def __init__(self, dataplane: DataPlane, charge: Callable[[int], None] = lambda chars: None):
        self.dataplane = dataplane
        self.limits = dataplane.limits
        self.charge = charge  # (input characters) -> None, or a quota error

    async def Translate(self, request, context):
        job = TranslateInput.from_pb(request, self.limits)
        self.charge(sum(len(t) for t in job.texts))
        results = await self.dataplane.translate(job)
        return pb.TranslateResponse(translations=[r.to_pb() for r in results])

    async def TranslateStream(self, request, context):
        job = TranslateInput.from_pb(request, self.limits)
        self.charge(sum(len(t) for t in job.texts))
        async for paragraph in self.dataplane.translate_stream(job):
            yield paragraph.to_pb()

    async def Summarize(self, request, context):
        job = SummarizeInput.from_pb(request, self.limits)
        self.charge(len(job.text))
        result = await self.dataplane.summarize(job)
        return result.to_pb()

    async def SummarizeStream(self, request, context):
        job = SummarizeInput.from_pb(request, self.limits)
        self.charge(len(job.text))
        async for item in self.dataplane.summarize_stream(job):
            if isinstance(item, str):
                yield pb.SummarizeStreamResponse(delta=item)
            else:
                yield pb.SummarizeStreamResponse(done=item.to_pb())

    async def DetectLanguage(self, request, context):
        text, max_results = detect_input(request, self.limits)
        self.charge(len(text))
        scores = await self.dataplane.detect(text, max_results)
        return pb.DetectLanguageResponse(
            languages=[
                pb.LanguageScore(language=s.language, confidence=s.confidence) for s in scores
            ]
        )

    async def ListModels(self, request, context):
        self.charge(0)
        return pb.ListModelsResponse(models=[model_info(e) for e in self.dataplane.list_models()])
