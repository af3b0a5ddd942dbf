"""Builders of tiny, real multilingual translation models for tests: M2M100, NLLB, mBART-50 and a
multi-target Marian.

Like :mod:`model_factory` (whose corpus, SentencePiece trainer, generation-config helper and Marian
builder they reuse), each builder trains a small tokenizer on :data:`model_factory.NEWS_CORPUS`,
initialises a model with seeded random weights and writes everything with ``save_pretrained``, so
that ``AutoTokenizer.from_pretrained(path)`` + ``AutoModelForSeq2SeqLM.from_pretrained(path)`` load
it offline, as they would a real checkpoint:

- :func:`build_m2m100`: ``M2M100ForConditionalGeneration`` + ``M2M100Tokenizer`` (``vocab.json`` +
  ``sentencepiece.bpe.model``) with the 100 ``__xx__`` language tokens (``__pt__``, ``__en__``...);
- :func:`build_nllb`: ``M2M100ForConditionalGeneration`` + ``NllbTokenizer`` (``tokenizer.json``,
  BPE) with the 202 FLORES-200 codes (``por_Latn``, ``eng_Latn``...);
- :func:`build_mbart50`: ``MBartForConditionalGeneration`` + ``MBart50Tokenizer``
  (``tokenizer.json``, Unigram) with the 52 mBART-50 codes (``pt_XX``, ``en_XX``...);
- :func:`build_multi_target_marian`: :func:`model_factory.build_marian` with ``>>por<<`` and
  ``>>pob<<`` target tokens added to the shared vocabulary (as in opus-mt-tc-big-en-pt).

Ids follow the fairseq checkpoints: 0 ``<s>``, 1 ``<pad>``, 2 ``</s>`` (also the decoder start),
3 ``<unk>``, then the pieces, then the language tokens (as special added tokens, so that
``skip_special_tokens=True`` drops them, as with the real tokenizers).

The models are a few hundred KB and build in well under a second each. Their output is garbage, but
the saved ``generation_config.json`` is greedy and short, suppresses every token that decodes to
nothing visible and -- unlike the real checkpoints -- bans every language token
(``bad_words_ids``). A banned token can still be *forced*: ``ForcedBOSTokenLogitsProcessor`` runs
after ``NoBadWordsLogitsProcessor``. So the first generated token is a language token if and only if
``forced_bos_token_id`` was passed, which makes the language handling observable in the output ids.

Everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import warnings

from model_factory import (
    _EOS,
    _PAD,
    _SPIECE_SPACE,
    _UNK,
    NEWS_CORPUS,
    _check_window,
    _invisible,
    _prepare,
    _seed_everything,
    _set_generation_config,
    _train_sentencepiece,
    build_marian,
)

__all__ = [
    "MARIAN_TARGET_TOKENS",
    "build_m2m100",
    "build_mbart50",
    "build_multi_target_marian",
    "build_nllb",
]

_BOS, _MASK = "<s>", "<mask>"
_FAIRSEQ_SPECIALS = [_BOS, _PAD, _EOS, _UNK]  # ids 0..3 in the fairseq checkpoints
_BYTE_PIECE = re.compile(r"^<0x[0-9A-F]{2}>$")

# Target-language tokens of the multi-target Marian (opus-mt-tc-big-en-pt has these two).
MARIAN_TARGET_TOKENS = (">>por<<", ">>pob<<")


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _model_dims(
    *, d_model: int, layers: int, heads: int, ffn_dim: int, max_position_embeddings: int
) -> dict:
    """The fairseq-style (M2M100 / mBART) config fields shared by the builders."""
    return {
        "d_model": d_model,
        "encoder_layers": layers,
        "decoder_layers": layers,
        "encoder_attention_heads": heads,
        "decoder_attention_heads": heads,
        "encoder_ffn_dim": ffn_dim,
        "decoder_ffn_dim": ffn_dim,
        "max_position_embeddings": max_position_embeddings,
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "encoder_layerdrop": 0.0,
        "decoder_layerdrop": 0.0,
        "scale_embedding": True,
        "tie_word_embeddings": True,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "decoder_start_token_id": 2,
        "forced_eos_token_id": 2,
    }


def _finish(
    model,
    tokenizer,
    out: pathlib.Path,
    *,
    language_ids: list[int],
    max_new_tokens: int,
    min_new_tokens: int,
) -> pathlib.Path:
    """Greedy short generation that never emits a language token unless forced; save the model."""
    pad_id, eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    languages = set(language_ids)
    special = set(tokenizer.all_special_ids)
    suppress = set()
    for i in range(len(tokenizer)):
        if i in languages or i == eos_id:
            continue  # languages are banned with bad_words_ids instead (they must stay forcible)
        piece = tokenizer.convert_ids_to_tokens(i)
        if (
            i in special
            or piece is None
            or _BYTE_PIECE.match(piece)
            or _invisible(piece.replace(_SPIECE_SPACE, " "))
        ):
            suppress.add(i)
    _set_generation_config(
        model,
        decoder_start_token_id=eos_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        suppress_tokens=suppress,
    )
    model.generation_config.bad_words_ids = [[i] for i in sorted(languages)]
    model.save_pretrained(out)
    return out


# --------------------------------------------------------------------------------------------------
# M2M100
# --------------------------------------------------------------------------------------------------


def _m2m100_model(
    tokenizer, out, language_ids, *, init_std, seed, max_new_tokens, min_new_tokens, **dims
) -> pathlib.Path:
    """The M2M100 architecture (M2M100 and NLLB alike) for `tokenizer`, saved beside it."""
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    config = M2M100Config(vocab_size=len(tokenizer), init_std=init_std, **_model_dims(**dims))
    _seed_everything(seed)
    model = M2M100ForConditionalGeneration(config).eval()
    return _finish(
        model,
        tokenizer,
        out,
        language_ids=language_ids,
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
    )


def build_m2m100(
    out_dir: str | os.PathLike[str],
    *,
    vocab_size: int = 400,
    d_model: int = 32,
    layers: int = 1,
    heads: int = 2,
    ffn_dim: int = 64,
    max_position_embeddings: int = 64,
    model_max_length: int = 48,
    max_new_tokens: int = 24,
    min_new_tokens: int = 4,
    init_std: float = 0.5,
    seed: int = 0,
) -> pathlib.Path:
    """An ``M2M100ForConditionalGeneration`` + ``M2M100Tokenizer`` saved to ``out_dir``.

    The tokenizer is the facebook/m2m100_418M layout: a SentencePiece model (trained on the news
    corpus with byte fallback) as ``sentencepiece.bpe.model`` and a ``vocab.json`` mapping its
    pieces to fairseq ids; the 100 ``__xx__`` tokens follow the vocabulary. They are listed as
    extra special tokens, as the real ``tokenizer_config.json`` does: in transformers 5 an
    ``M2M100Tokenizer`` built without that list does not make them special, so decoding with
    ``skip_special_tokens=True`` would keep ``__en__`` in the text.
    """
    from sentencepiece import SentencePieceProcessor
    from transformers import M2M100Tokenizer
    from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES

    _check_window(model_max_length, max_position_embeddings)
    out = _prepare(out_dir)

    proto = _train_sentencepiece(NEWS_CORPUS, vocab_size=vocab_size, byte_fallback=True)
    spm_path = out / "sentencepiece.bpe.model"
    spm_path.write_bytes(proto)
    sp = SentencePieceProcessor(model_proto=proto)
    vocab = {token: i for i, token in enumerate(_FAIRSEQ_SPECIALS)}
    for i in range(sp.get_piece_size()):
        if not (sp.is_control(i) or sp.is_unknown(i)):
            vocab.setdefault(sp.id_to_piece(i), len(vocab))
    vocab_path = out / "vocab.json"
    vocab_path.write_text(json.dumps(vocab, ensure_ascii=False, indent=2), "utf-8")

    language_tokens = [f"__{code}__" for code in FAIRSEQ_LANGUAGE_CODES["m2m100"]]
    tokenizer = M2M100Tokenizer(
        vocab_file=str(vocab_path),
        spm_file=str(spm_path),
        src_lang="en",
        extra_special_tokens=language_tokens,
        model_max_length=model_max_length,
    )
    tokenizer.save_pretrained(out)
    language_ids = [tokenizer.lang_token_to_id[t] for t in language_tokens]
    assert language_ids == tokenizer.convert_tokens_to_ids(language_tokens)

    return _m2m100_model(
        tokenizer,
        out,
        language_ids,
        init_std=init_std,
        seed=seed,
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        d_model=d_model,
        layers=layers,
        heads=heads,
        ffn_dim=ffn_dim,
        max_position_embeddings=max_position_embeddings,
    )


# --------------------------------------------------------------------------------------------------
# NLLB
# --------------------------------------------------------------------------------------------------


def build_nllb(
    out_dir: str | os.PathLike[str],
    *,
    vocab_size: int = 400,
    d_model: int = 32,
    layers: int = 1,
    heads: int = 2,
    ffn_dim: int = 64,
    max_position_embeddings: int = 64,
    model_max_length: int = 48,
    max_new_tokens: int = 24,
    min_new_tokens: int = 4,
    init_std: float = 0.5,
    seed: int = 0,
) -> pathlib.Path:
    """An NLLB-200 lookalike: ``M2M100ForConditionalGeneration`` + ``NllbTokenizer``.

    The tokenizer is a Metaspace BPE trained with the ``tokenizers`` library on the news corpus
    (every character of the corpus is in its alphabet; others encode to ``<unk>``), saved as
    ``tokenizer.json``. The 202 FLORES-200 codes (``eng_Latn``, ``por_Latn``...) follow the
    vocabulary as special tokens, then ``<mask>``; in the default (non-legacy) mode the source
    code is the first input token.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import NllbTokenizer
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES

    _check_window(model_max_length, max_position_embeddings)
    out = _prepare(out_dir)

    bpe = Tokenizer(models.BPE(unk_token=_UNK))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=_SPIECE_SPACE, prepend_scheme="always", split=True
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=_FAIRSEQ_SPECIALS,
        show_progress=False,
    )
    bpe.train_from_iterator(NEWS_CORPUS, trainer=trainer)
    model_json = json.loads(bpe.to_str())["model"]
    vocab: dict[str, int] = model_json["vocab"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model_json["merges"]]
    assert [vocab[t] for t in _FAIRSEQ_SPECIALS] == [0, 1, 2, 3]

    tokenizer = NllbTokenizer(
        vocab=vocab,
        merges=merges,
        src_lang="eng_Latn",
        model_max_length=model_max_length,
    )
    tokenizer.save_pretrained(out)
    language_ids = tokenizer.convert_tokens_to_ids(list(FAIRSEQ_LANGUAGE_CODES))
    assert tokenizer.unk_token_id not in language_ids

    return _m2m100_model(
        tokenizer,
        out,
        language_ids,
        init_std=init_std,
        seed=seed,
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        d_model=d_model,
        layers=layers,
        heads=heads,
        ffn_dim=ffn_dim,
        max_position_embeddings=max_position_embeddings,
    )


# --------------------------------------------------------------------------------------------------
# mBART-50
# --------------------------------------------------------------------------------------------------


def build_mbart50(
    out_dir: str | os.PathLike[str],
    *,
    vocab_size: int = 300,
    d_model: int = 32,
    layers: int = 1,
    heads: int = 2,
    ffn_dim: int = 64,
    max_position_embeddings: int = 64,
    model_max_length: int = 48,
    max_new_tokens: int = 24,
    min_new_tokens: int = 4,
    init_std: float = 0.5,
    seed: int = 0,
) -> pathlib.Path:
    """An mBART-50 many-to-many lookalike: ``MBartForConditionalGeneration`` +
    ``MBart50Tokenizer``.

    The tokenizer is a SentencePiece Unigram vocabulary trained on the news corpus (no byte
    fallback: characters it never saw encode to ``<unk>``), given to ``MBart50Tokenizer`` which
    lays it out as facebook/mbart-large-50-many-to-many-mmt does: ``<s> <pad> </s> <unk>``, the
    pieces, the 52 codes (``en_XX``, ``pt_XX``...), ``<mask>``; saved as ``tokenizer.json``. The
    source code is the first input token.
    """
    from sentencepiece import sentencepiece_model_pb2 as sp_pb2
    from transformers import MBart50Tokenizer, MBartConfig, MBartForConditionalGeneration
    from transformers.models.mbart50.tokenization_mbart50 import FAIRSEQ_LANGUAGE_CODES

    _check_window(model_max_length, max_position_embeddings)
    out = _prepare(out_dir)

    proto = sp_pb2.ModelProto()
    proto.ParseFromString(
        _train_sentencepiece(NEWS_CORPUS, vocab_size=vocab_size, byte_fallback=False)
    )
    # SentencePiece order (<pad> </s> <unk> then pieces): MBart50Tokenizer drops the first three
    # and puts the fairseq specials in front.
    pieces = [(p.piece, float(p.score)) for p in proto.pieces]
    assert [p for p, _ in pieces[:3]] == [_PAD, _EOS, _UNK]
    tokenizer = MBart50Tokenizer(vocab=pieces, src_lang="en_XX", model_max_length=model_max_length)
    tokenizer.save_pretrained(out)
    language_ids = tokenizer.convert_tokens_to_ids(list(FAIRSEQ_LANGUAGE_CODES))
    assert tokenizer.unk_token_id not in language_ids

    config = MBartConfig(
        vocab_size=len(tokenizer),
        init_std=init_std,
        **_model_dims(
            d_model=d_model,
            layers=layers,
            heads=heads,
            ffn_dim=ffn_dim,
            max_position_embeddings=max_position_embeddings,
        ),
    )
    _seed_everything(seed)
    model = MBartForConditionalGeneration(config).eval()
    return _finish(
        model,
        tokenizer,
        out,
        language_ids=language_ids,
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
    )


# --------------------------------------------------------------------------------------------------
# multi-target Marian
# --------------------------------------------------------------------------------------------------


def build_multi_target_marian(
    out_dir: str | os.PathLike[str],
    *,
    target_tokens: tuple[str, ...] = MARIAN_TARGET_TOKENS,
    seed: int = 0,
    **marian_options,
) -> pathlib.Path:
    """A multi-target Marian (like opus-mt-tc-big-en-pt): :func:`model_factory.build_marian` with
    ``target_tokens`` (``>>por<<``, ``>>pob<<``) appended to the shared ``vocab.json``.

    ``MarianTokenizer`` splits a leading ``>>xx<<`` off the text and looks it up in the vocabulary
    as one token. The model is rebuilt, with the same config and seed, for the larger vocabulary;
    its generation config is ``build_marian``'s, with the target tokens banned.
    """
    from transformers import GenerationConfig, MarianConfig, MarianMTModel, MarianTokenizer

    out = build_marian(out_dir, seed=seed, **marian_options)
    vocab_path = out / "vocab.json"
    vocab = json.loads(vocab_path.read_text("utf-8"))
    for token in target_tokens:
        if not (token.startswith(">>") and token.endswith("<<")):
            raise ValueError(f"{token!r} is not a >>xx<< target token")
        vocab.setdefault(token, len(vocab))
    vocab_path.write_text(json.dumps(vocab, ensure_ascii=False, indent=2), "utf-8")

    with warnings.catch_warnings():
        # MarianTokenizer asks for sacremoses (punctuation normalisation); not needed here.
        warnings.filterwarnings("ignore", message=".*sacremoses", category=UserWarning)
        tokenizer = MarianTokenizer.from_pretrained(out)
    assert set(target_tokens) <= set(tokenizer.supported_language_codes)
    tokenizer.save_pretrained(out)

    config = MarianConfig.from_pretrained(out)
    config.vocab_size = config.decoder_vocab_size = len(vocab)
    generation_config = GenerationConfig.from_pretrained(out)
    generation_config.bad_words_ids = [[vocab[t]] for t in target_tokens]
    _seed_everything(seed)
    model = MarianMTModel(config).eval()
    model.generation_config = generation_config
    model.save_pretrained(out)
    return out
