"""The gRPC servicer: a thin adapter from protobuf to the data plane and back."""

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

    def __init__(self, dataplane: DataPlane):
        self.dataplane = dataplane
        self.limits = dataplane.limits

    async def Translate(self, request, context):
        results = await self.dataplane.translate(TranslateInput.from_pb(request, self.limits))
        return pb.TranslateResponse(translations=[r.to_pb() for r in results])

    async def TranslateStream(self, request, context):
        stream = self.dataplane.translate_stream(TranslateInput.from_pb(request, self.limits))
        async for paragraph in stream:
            yield paragraph.to_pb()

    async def Summarize(self, request, context):
        result = await self.dataplane.summarize(SummarizeInput.from_pb(request, self.limits))
        return result.to_pb()

    async def DetectLanguage(self, request, context):
        text, max_results = detect_input(request, self.limits)
        scores = await self.dataplane.detect(text, max_results)
        return pb.DetectLanguageResponse(
            languages=[
                pb.LanguageScore(language=s.language, confidence=s.confidence) for s in scores
            ]
        )

    async def ListModels(self, request, context):
        return pb.ListModelsResponse(models=[model_info(e) for e in self.dataplane.list_models()])
