"""Hugging Face `transformers` engine for seq2seq translation and summarisation models."""

import copy
import logging
import threading
import time
import warnings
from collections.abc import Sequence

import torch
import transformers
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    StoppingCriteria,
    StoppingCriteriaList,
)

from ..settings import ModelConfig, ServerSettings
from .base import Engine, Generated, GenerationParams, ShouldStop
from .loading import load_error, resolve_device, resolve_source
from .multilingual import LanguageTokens

log = logging.getLogger(__name__)
# Generation-config notices ("both max_new_tokens and max_length set") are noise for operators.
transformers.logging.set_verbosity_error()

_UNBOUNDED = 1_000_000  # tokenizers without a real limit report ~1e30 as model_max_length


class _StopWhenAbandoned(StoppingCriteria):
    def __init__(self, should_stop: ShouldStop):
        self.should_stop = should_stop

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.should_stop(), dtype=torch.bool)


class HuggingFaceEngine(Engine):
    """A seq2seq model and its tokenizer, loaded with `from_pretrained` from a Hub id or a directory."""

    backend = "torch"

    def __init__(self, config: ModelConfig, settings: ServerSettings):
        self.name = config.name
        self.task = config.task
        self.config = config
        self.device = resolve_device(config.device or settings.device)
        source, local_only = resolve_source(config, settings)
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Recommended: pip install sacremoses")
                self.tokenizer = AutoTokenizer.from_pretrained(
                    source, revision=config.revision, local_files_only=local_only
                )
            model = AutoModelForSeq2SeqLM.from_pretrained(
                source, revision=config.revision, local_files_only=local_only
            )
        except Exception as exc:  # transformers raises OSError, ValueError, EnvironmentError...
            raise load_error(config, exc, local_only) from None
        model.eval()
        if config.quantize == "dynamic-int8":
            model = _quantize_dynamic_int8(model)
        elif config.quantize:
            raise load_error(
                config, ValueError(f"unknown quantize {config.quantize!r}"), local_only
            )
        self.model = model.to(self.device)
        self.load_seconds = time.perf_counter() - started
        # Fast tokenizers are not safe to call from several threads at once ("Already borrowed").
        self._tokenizer_lock = threading.Lock()
        self.language_tokens = LanguageTokens.detect(self.tokenizer, config.language_codes)
        self.prefix = config.prefix if config.prefix is not None else self._default_prefix()
        self.generation_config = self._generation_config()
        self._window = self._find_window()
        # Decoder positions bound the output too: past them Marian/BART index out of range.
        positions = getattr(self.model.config, "max_position_embeddings", None)
        self._decoder_positions = positions - 1 if positions else 1_000_000
        self._reserved = self._prefix_tokens()

    def _default_prefix(self) -> str:
        params = getattr(self.model.config, "task_specific_params", None) or {}
        if self.task == "summarization":
            return params.get("summarization", {}).get("prefix", "") or ""
        return ""

    def _generation_config(self):
        gc = copy.deepcopy(self.model.generation_config)
        if self.config.num_beams is not None:
            gc.num_beams = self.config.num_beams
        if self.config.no_repeat_ngram_size is not None:
            gc.no_repeat_ngram_size = self.config.no_repeat_ngram_size
        if self.config.repetition_penalty is not None:
            gc.repetition_penalty = self.config.repetition_penalty
        return gc

    def _find_window(self) -> int:
        limits = []
        tokenizer_max = getattr(self.tokenizer, "model_max_length", None)
        if tokenizer_max and tokenizer_max < _UNBOUNDED:
            limits.append(int(tokenizer_max))
        for attr in ("max_position_embeddings", "n_positions"):
            value = getattr(self.model.config, attr, None)
            if value:
                limits.append(int(value))
                break
        return min(limits) if limits else 512

    def _prefix_tokens(self) -> int:
        """Tokens the engine adds to every input beyond the text's own: task prefix, language tags."""
        extra = self.language_tokens.input_overhead if self.language_tokens else 0
        if self.prefix:
            extra += len(self.tokenizer(self.prefix, add_special_tokens=False).input_ids)
        return extra

    @property
    def max_input_tokens(self) -> int:
        return self._window - self._reserved

    @property
    def max_new_tokens(self) -> int:
        """The model's own cap on generated tokens."""
        gc = self.generation_config
        if self.config.max_new_tokens:
            return min(self.config.max_new_tokens, self._decoder_positions)
        if gc.max_new_tokens:
            return min(gc.max_new_tokens, self._decoder_positions)
        if gc.max_length and gc.max_length != 20:  # 20 is transformers' placeholder default
            return min(gc.max_length - 1, self._decoder_positions)
        return min(self._window, self._decoder_positions)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        with self._tokenizer_lock:
            encoded = self.tokenizer(list(texts), add_special_tokens=True)
        return [len(ids) for ids in encoded["input_ids"]]

    def _inputs(self, texts: Sequence[str], params: GenerationParams) -> list[str]:
        prefix = self.prefix
        if self.language_tokens:
            prefix = self.language_tokens.text_prefix(params.target_language) + prefix
        return [prefix + t for t in texts] if prefix else list(texts)

    def generate(
        self, texts: Sequence[str], params: GenerationParams, should_stop: ShouldStop | None = None
    ) -> list[Generated]:
        with self._tokenizer_lock:
            if self.language_tokens:
                self.language_tokens.set_source(params.source_language)
            encoded = self.tokenizer(
                self._inputs(texts, params), return_tensors="pt", padding=True, truncation=False
            )
        input_lengths = encoded["attention_mask"].sum(dim=1).tolist()
        if max(input_lengths) > self._window:
            raise ValueError(
                f"input of {max(input_lengths)} tokens exceeds the window {self._window}"
            )
        cap = self.max_new_tokens
        if params.max_new_tokens is not None:
            cap = min(cap, params.max_new_tokens)
        elif self.task == "translation":
            # Translations are about as long as their input: a generous proportional cap stops
            # runaway repetition early; it only ever lowers the model's own limit.
            cap = min(cap, 2 * max(input_lengths) + 16)
        gc = copy.copy(self.generation_config)
        gc.max_length = None
        gc.min_length = 0
        gc.max_new_tokens = cap
        min_new = params.min_new_tokens
        if min_new is None:
            min_new = min(self.generation_config.min_length or 0, cap // 2)
        gc.min_new_tokens = min_new
        kwargs: dict = {"generation_config": gc}
        if self.language_tokens:
            kwargs.update(self.language_tokens.generate_kwargs(params.target_language))
        if should_stop is not None:
            kwargs["stopping_criteria"] = StoppingCriteriaList([_StopWhenAbandoned(should_stop)])
        encoded = {k: v.to(self.device) for k, v in encoded.items()}
        with torch.inference_mode():
            output = self.model.generate(**encoded, **kwargs)
        with self._tokenizer_lock:
            decoded = self.tokenizer.batch_decode(output, skip_special_tokens=True)
        pad = self.generation_config.pad_token_id
        generated = output[:, 1:]
        output_lengths = (
            (generated != pad).sum(dim=1).tolist()
            if pad is not None
            else [generated.shape[1]] * len(texts)
        )
        return [
            Generated(text=d.strip(), input_tokens=i, output_tokens=o)
            for d, i, o in zip(decoded, input_lengths, output_lengths, strict=True)
        ]

    def close(self) -> None:
        self.model = None


def _quantize_dynamic_int8(model):
    # torch.ao.quantization.quantize_dynamic is deprecated in torch 2.13 but is what works on CPU
    # without extra packages; see README "Quantisation" for the torchao comparison.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
