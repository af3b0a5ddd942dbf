"""Inference engines behind one interface (`Engine`)."""

from ..settings import ModelConfig, ServerSettings
from .base import Engine, Generated, GenerationParams


def load_engine(config: ModelConfig, settings: ServerSettings) -> Engine:
    """Load the model named by `config` with its configured backend (blocking; call off the loop):
    a decoder-only checkpoint is an instruction model (causal.py), any other a seq2seq one."""
    if config.backend == "ctranslate2":
        from .ct2 import CTranslate2Engine

        return CTranslate2Engine(config, settings)
    from .loading import is_decoder_only

    if is_decoder_only(config, settings):
        from .causal import InstructionEngine

        return InstructionEngine(config, settings)
    instruct_only = ("system_prompt", "prompt_template", "context_window")
    given = [key for key in instruct_only if getattr(config, key) is not None]
    if given:
        from ..errors import ModelLoadError

        raise ModelLoadError(
            f"model {config.name!r} ({config.source}): {', '.join(given)} apply to instruction "
            "(decoder-only) models only, and this is a sequence-to-sequence model"
        )
    from .hf import HuggingFaceEngine

    return HuggingFaceEngine(config, settings)


__all__ = ["Engine", "Generated", "GenerationParams", "load_engine"]
