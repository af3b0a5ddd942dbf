"""Inference engines behind one interface (`Engine`)."""

from ..settings import ModelConfig, ServerSettings
from .base import Engine, Generated, GenerationParams


def load_engine(config: ModelConfig, settings: ServerSettings) -> Engine:
    """Load the model named by `config` with its configured backend (blocking; call off the loop)."""
    if config.backend == "ctranslate2":
        from .ct2 import CTranslate2Engine

        return CTranslate2Engine(config, settings)
    from .hf import HuggingFaceEngine

    return HuggingFaceEngine(config, settings)


__all__ = ["Engine", "Generated", "GenerationParams", "load_engine"]
