"""Hugging Face `transformers` engine for seq2seq translation and summarisation models."""

import copy
import logging
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
from . import tokenization
from .base import Generated, GenerationParams, ShouldStop
from .loading import load_error, resolve_source

log = logging.getLogger(__name__)
# Generation-config notices ("both max_new_tokens and max_length set") are noise for operators.
transformers.logging.set_verbosity_error()


def decoding_config(
    base: transformers.GenerationConfig,
    params: GenerationParams,
    max_new_tokens: int | None,
    min_new_tokens: int | None,
) -> transformers.GenerationConfig:
    """A copy of the model's generation config for one batch: its token budget, and the decoding
    overrides of `params` (num_beams, no_repeat_ngram_size, repetition_penalty; None keeps the
    model's own)."""
    gc = copy.copy(base)
    gc.max_length = None
    gc.min_length = 0
    gc.max_new_tokens = max_new_tokens
    gc.min_new_tokens = min_new_tokens
    if params.num_beams is not None:
        gc.num_beams = params.num_beams
    if params.no_repeat_ngram_size is not None:
        gc.no_repeat_ngram_size = params.no_repeat_ngram_size
    if params.repetition_penalty is not None:
        gc.repetition_penalty = params.repetition_penalty
    return gc


class _StopWhenAbandoned(StoppingCriteria):
    def __init__(self, should_stop: ShouldStop):
        self.should_stop = should_stop

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.should_stop(), dtype=torch.bool)


class HuggingFaceEngine(tokenization.TokenizedEngine):
    """A seq2seq model and its tokenizer, loaded with `from_pretrained` from a Hub id or a directory."""

    backend = "torch"

    def __init__(self, config: ModelConfig, settings: ServerSettings):
        super().__init__(config, settings)
        source, local_only = resolve_source(config, settings)
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Recommended: pip install sacremoses")
                tokenizer = AutoTokenizer.from_pretrained(
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
        self._set_up_tokenization(tokenizer, model.config, self._generation_config())

    def _generation_config(self):
        """The checkpoint's generation_config with this model's configured overrides."""
        gc = copy.deepcopy(self.model.generation_config)
        if self.config.num_beams is not None:
            gc.num_beams = self.config.num_beams
        if self.config.no_repeat_ngram_size is not None:
            gc.no_repeat_ngram_size = self.config.no_repeat_ngram_size
        if self.config.repetition_penalty is not None:
            gc.repetition_penalty = self.config.repetition_penalty
        return gc

    def generate(
        self, texts: Sequence[str], params: GenerationParams, should_stop: ShouldStop | None = None
    ) -> list[Generated]:
        with self._tokenizer_lock:
            if self.language_tokens:
                self.language_tokens.set_source(params.source_language)
            inputs = tokenization.input_texts(
                texts, self.prefix, self.language_tokens, params.target_language
            )
            encoded = self.tokenizer(inputs, return_tensors="pt", padding=True, truncation=False)
        input_lengths = encoded["attention_mask"].sum(dim=1).tolist()
        if max(input_lengths) > self._window:
            raise ValueError(
                f"input of {max(input_lengths)} tokens exceeds the window {self._window}"
            )
        budget = tokenization.token_budget(
            self.max_new_tokens,
            params,
            self.task,
            max(input_lengths),
            self.generation_config,
        )
        gc = decoding_config(
            self.generation_config, params, budget.max_new_tokens, budget.min_new_tokens
        )
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
