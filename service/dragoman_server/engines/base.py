"""The engine interface: a batch of texts in, a batch of texts out. Engines know nothing of gRPC."""

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class GenerationParams:
    """What a batch shares. Segments with equal params may be batched together.

    `num_beams`, `no_repeat_ngram_size` and `repetition_penalty` override the model's configured
    decoding for these segments (None: the model's own); the data plane sets them to regenerate a
    segment the output checks flagged (see output_checks.retry_params).
    """

    source_language: str | None = None
    target_language: str | None = None
    max_new_tokens: int | None = None
    min_new_tokens: int | None = None
    num_beams: int | None = None
    no_repeat_ngram_size: int | None = None
    repetition_penalty: float | None = None
    # Summaries by instruction models (prompts.py): the length asked for and "paragraph"/"bullets".
    words: int | None = None
    summary_format: str | None = None


@dataclass(frozen=True)
class Generated:
    """One output of a batch."""

    text: str
    input_tokens: int
    output_tokens: int


# Called between generation steps; returns True when every sequence of the batch was abandoned.
ShouldStop = Callable[[], bool]


class Engine(ABC):
    """A loaded model. `generate` runs on the engine's worker thread, never on the event loop."""

    name: str
    task: str
    device: str
    backend: str
    # An instruction (decoder-only chat) model: prompted, unit-sized inputs (engines/causal.py).
    instruct: bool = False

    @property
    @abstractmethod
    def max_input_tokens(self) -> int:
        """The real window: the most tokens one input may have, special tokens counted."""

    @abstractmethod
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Input tokens of each text as the model would see it, special tokens included."""

    @abstractmethod
    def generate(
        self, texts: Sequence[str], params: GenerationParams, should_stop: ShouldStop | None = None
    ) -> list[Generated]:
        """Generate one output per input. Inputs must fit the window; longer ones are an error."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model's memory."""
