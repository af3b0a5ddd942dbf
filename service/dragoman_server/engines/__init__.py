"""Inference engines behind one interface (`Engine`)."""

from ..errors import ModelLoadError
from ..settings import ModelConfig, ServerSettings
from .base import Engine, Generated, GenerationParams


def load_engine(config: ModelConfig, settings: ServerSettings) -> Engine:
    """Load the model named by `config` with its configured backend (blocking; call off the loop):
    a decoder-only checkpoint is an instruction model (causal.py), any other a seq2seq one."""
    from .loading import is_decoder_only

    decoder_only = is_decoder_only(config, settings)
    if config.backend == "ctranslate2":
        if decoder_only:
            # Before converting: the conversion would be written to the cache for nothing.
            raise ModelLoadError(
                f'model {config.name!r} ({config.source}): backend = "ctranslate2" serves '
                "sequence-to-sequence models only; this decoder-only (instruction) model runs "
                "with torch and continuous batching: remove `backend` (CTranslate2 measured no "
                "faster for it, README: Instruction models)"
            )
        from .ct2 import CTranslate2Engine

        return CTranslate2Engine(config, settings)
    if decoder_only:
        from .causal import InstructionEngine

        return InstructionEngine(config, settings)
    instruct_only = ("system_prompt", "prompt_template", "context_window")
    given = [key for key in instruct_only if getattr(config, key) is not None]
    if given:
        raise ModelLoadError(
            f"model {config.name!r} ({config.source}): {', '.join(given)} apply to instruction "
            "(decoder-only) models only, and this is a sequence-to-sequence model"
        )
    from .hf import HuggingFaceEngine

    return HuggingFaceEngine(config, settings)


__all__ = ["Engine", "Generated", "GenerationParams", "load_engine"]
