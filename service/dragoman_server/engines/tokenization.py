"""What every seq2seq backend computes the same way: the window, the task prefix, language tags,
and how many tokens a batch may generate. Shared by the transformers and CTranslate2 engines."""

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ModelLoadError
from ..gil import courtesy
from .base import Engine, GenerationParams
from .loading import resolve_device
from .multilingual import LanguageTokens

UNBOUNDED = 1_000_000  # tokenizers without a real limit report ~1e30 as model_max_length
_PLACEHOLDER_MAX_LENGTH = 20  # transformers' default max_length: "not configured"


def find_window(tokenizer, model_config) -> int:
    """The most input tokens the model takes: min of the tokenizer's limit and the positions."""
    limits = []
    tokenizer_max = getattr(tokenizer, "model_max_length", None)
    if tokenizer_max and tokenizer_max < UNBOUNDED:
        limits.append(int(tokenizer_max))
    for attr in ("max_position_embeddings", "n_positions"):
        value = getattr(model_config, attr, None)
        if value:
            limits.append(int(value))
            break
    return min(limits) if limits else 512


def default_prefix(model_config, task: str) -> str:
    """The checkpoint's own task prefix (T5-style "summarize: "), else ''."""
    params = getattr(model_config, "task_specific_params", None) or {}
    if task == "summarization":
        return params.get("summarization", {}).get("prefix", "") or ""
    return ""


def reserved_tokens(tokenizer, prefix: str, language_tokens: LanguageTokens | None) -> int:
    """Tokens the engine adds to every input beyond the text's own: task prefix, language tags."""
    extra = language_tokens.input_overhead if language_tokens else 0
    if prefix:
        extra += len(tokenizer(prefix, add_special_tokens=False).input_ids)
    return extra


def input_texts(
    texts: Sequence[str], prefix: str, language_tokens: LanguageTokens | None, target: str | None
) -> list[str]:
    """The texts as the tokenizer must see them: >>xx<< target tag and task prefix in front."""
    if language_tokens:
        prefix = language_tokens.text_prefix(target) + prefix
    return [prefix + t for t in texts] if prefix else list(texts)


def decoder_positions(model_config) -> int:
    """Decoder positions bound the output too: past them Marian/BART index out of range."""
    positions = getattr(model_config, "max_position_embeddings", None)
    return positions - 1 if positions else UNBOUNDED


def model_max_new_tokens(
    configured: int | None, generation_config, window: int, positions: int = UNBOUNDED
) -> int:
    """The model's own cap on generated tokens: config, else generation_config, else the window;
    never past the decoder's positions."""
    if configured:
        cap = configured
    elif generation_config.max_new_tokens:
        cap = generation_config.max_new_tokens
    elif generation_config.max_length and generation_config.max_length != _PLACEHOLDER_MAX_LENGTH:
        cap = generation_config.max_length - 1
    else:
        cap = window
    return min(cap, positions)


@dataclass(frozen=True)
class Budget:
    max_new_tokens: int
    min_new_tokens: int


def token_budget(
    model_cap: int, params: GenerationParams, task: str, longest_input: int, generation_config
) -> Budget:
    """How many tokens one batch may and must generate.

    Translations are about as long as their input: a generous proportional cap stops runaway
    repetition early; it only ever lowers the model's own limit. The minimum is the caller's, else
    the checkpoint's `min_new_tokens`, else its `min_length` up to half the cap."""
    cap = model_cap
    if params.max_new_tokens is not None:
        cap = min(cap, params.max_new_tokens)
    elif task == "translation":
        cap = min(cap, 2 * longest_input + 16)
    min_new = params.min_new_tokens
    if min_new is None:
        min_new = getattr(generation_config, "min_new_tokens", None)
    if min_new is None:
        min_new = min(generation_config.min_length or 0, cap // 2)
    return Budget(max_new_tokens=cap, min_new_tokens=min(min_new, cap))


def check_language_codes(language_tokens: LanguageTokens | None, config) -> None:
    """Raises ValueError naming the configured languages a multilingual model has no code for."""
    if language_tokens is None or config.task != "translation":
        return
    missing = language_tokens.missing(config.pairs)
    if missing:
        raise ValueError(
            f"this {language_tokens.family} model has no language code for "
            f"{', '.join(missing)}; add them to `language_codes` or remove them from `languages`"
        )


class TokenizedEngine(Engine):
    """What the transformers and CTranslate2 engines share: a Hugging Face tokenizer and what
    follows from it and the model's config (window, prefix, language tags, token caps)."""

    def __init__(self, config, settings):
        """What every engine is: its configured name, task and device."""
        self.name = config.name
        self.task = config.task
        self.config = config
        self.device = resolve_device(config.device or settings.device)

    def _set_up_tokenization(self, tokenizer, model_config, generation_config) -> None:
        """Call once the tokenizer is loaded (after `__init__`)."""
        config = self.config
        self.tokenizer = tokenizer
        self.generation_config = generation_config
        # Fast tokenizers are not safe to call from several threads at once ("Already borrowed").
        self._tokenizer_lock = threading.Lock()
        self.language_tokens = LanguageTokens.detect(tokenizer, config.language_codes)
        try:
            check_language_codes(self.language_tokens, config)
        except ValueError as exc:
            raise ModelLoadError(f"model {config.name!r} ({config.source}): {exc}") from None
        self.prefix = (
            config.prefix if config.prefix is not None else default_prefix(model_config, self.task)
        )
        self._window = find_window(tokenizer, model_config)
        self._decoder_positions = decoder_positions(model_config)
        self._reserved = reserved_tokens(tokenizer, self.prefix, self.language_tokens)

    @property
    def max_input_tokens(self) -> int:
        return self._window - self._reserved

    @property
    def max_new_tokens(self) -> int:
        """The model's own cap on generated tokens."""
        return model_max_new_tokens(
            self.config.max_new_tokens,
            self.generation_config,
            self._window,
            self._decoder_positions,
        )

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        with self._tokenizer_lock:
            encoded = self.tokenizer(list(texts), add_special_tokens=True)
        # Segmentation calls this for every sentence of a text, in a loop (see gil.py).
        courtesy()
        return [len(ids) for ids in encoded["input_ids"]]
