"""Builders of tiny, real Hugging Face seq2seq models for tests.

Each builder trains a small tokenizer on :data:`NEWS_CORPUS`, initialises a model with seeded random
weights and writes everything with ``save_pretrained`` to a directory, so that the service loads it
through the same ``AutoTokenizer.from_pretrained(path)`` +
``AutoModelForSeq2SeqLM.from_pretrained(path)`` path that real checkpoints take, with no network.

The models are a few hundred KB and build in a few tens of milliseconds (plus ~1 s of imports the
first time in a process). Their output is garbage, but it is real decoded text that depends on the
input: weights are initialised with a large standard deviation so that the encoder output matters,
and the saved ``generation_config.json`` is greedy (``num_beams=1``), short (``max_length`` =
``max_new_tokens`` + the decoder start token), holds end-of-sequence back for ``min_new_tokens``
steps (``min_length``) and suppresses every token that would decode to nothing visible (padding,
unknown, mask, whitespace-only pieces, raw bytes), so an output decoded with
``skip_special_tokens=True`` is never empty.

Everything is deterministic for a given ``seed``: building twice gives byte-identical files (the
seed drives the weights; the tokenizers depend on :data:`NEWS_CORPUS` alone).
"""

from __future__ import annotations

import io
import json
import math
import os
import pathlib
import unicodedata
import warnings
from collections.abc import Iterable, Sequence

__all__ = [
    "NEWS_CORPUS",
    "T5_SUMMARIZE_PREFIX",
    "build_bart",
    "build_marian",
    "build_t5",
    "build_tiny_llama",
    "build_tiny_llama_chat",
    "build_tiny_qwen2",
    "build_tiny_qwen2_chat",
]

NEWS_CORPUS: list[str] = [
    # Portuguese
    "O Governo aprovou ontem, em Conselho de Ministros, o Orçamento do Estado para 2025, que prevê "
    "um excedente de 0,3% do PIB.",
    "«Não vamos aumentar os impostos», garantiu o ministro das Finanças, Joaquim Miranda Sarmento, "
    "em conferência de imprensa.",
    "A inflação em Portugal abrandou para 2,1% em setembro, segundo a estimativa rápida do "
    "Instituto Nacional de Estatística (INE).",
    "Lisboa, 14 out. (Lusa) — O presidente da República, Marcelo Rebelo de Sousa, promulgou hoje o "
    "diploma sobre a habitação.",
    "O Sr. António Costa, ex-primeiro-ministro, assumiu a presidência do Conselho Europeu a 1 de "
    "dezembro.",
    "A Câmara Municipal do Porto anunciou a construção de 1.200 casas a custos controlados até "
    "2028.",
    "Os professores estão em greve há três semanas e exigem a recuperação de 6 anos, 6 meses e 23 "
    "dias de serviço.",
    "O Benfica venceu o Sporting por 2-1 no Estádio da Luz, num jogo marcado por duas expulsões.",
    "Segundo a Dra. Helena Marques, diretora do hospital, as urgências receberam mais de 800 "
    "doentes no fim de semana.",
    "A seca afeta 40% do território continental; o Alentejo e o Algarve são as regiões mais "
    "atingidas.",
    "“É uma vitória para a democracia”, afirmou a deputada, após a votação na Assembleia da "
    "República.",
    "O preço do gasóleo sobe 2 cêntimos por litro na próxima segunda-feira, enquanto a gasolina "
    "desce 1,5 cêntimos.",
    "A polícia deteve três suspeitos de tráfico de droga e apreendeu cerca de 2 kg de cocaína e "
    "15.000 euros em numerário.",
    "O Banco de Portugal reviu em alta a previsão de crescimento da economia para 1,9% este ano.",
    "No Brasil, o presidente Lula da Silva reuniu-se em Brasília com governadores para discutir a "
    "reforma tributária.",
    "A TAP transportou 16 milhões de passageiros em 2024, mais 1,2 milhões do que no ano anterior, "
    "p. ex. nas rotas do Atlântico.",
    "O incêndio que deflagrou na serra da Estrela às 15h30 já consumiu mais de 300 hectares de "
    "mato e pinhal.",
    "Os eleitores são chamados às urnas a 10 de março; as sondagens dão vantagem à AD, com 34% das "
    "intenções de voto.",
    "A ministra da Saúde admitiu que «a situação é difícil», mas recusou demitir-se.",
    "O Tribunal Constitucional declarou inconstitucional a norma que limitava o acesso à "
    "informação, por 7 votos contra 6.",
    "Em Coimbra, a universidade celebra 735 anos com uma exposição sobre a história da ciência em "
    "Portugal.",
    "O desemprego caiu para 6,4% no 2.º trimestre, o valor mais baixo desde 2002, de acordo com o "
    "INE.",
    "A União Europeia (UE) chegou a acordo sobre o pacto de migração e asilo após meses de "
    "negociações.",
    "Um sismo de magnitude 4,7 na escala de Richter foi sentido esta madrugada em Lisboa e "
    "Setúbal, sem causar danos.",
    # English
    "The U.S. Federal Reserve held interest rates steady on Wednesday, keeping its benchmark "
    "between 5.25% and 5.5%.",
    "“We are not there yet,” said Fed Chair Jerome Powell, adding that inflation remained above "
    "the 2% target.",
    "LONDON, Oct. 14 (Reuters) - British retail sales rose 0.4% in September, official figures "
    "showed on Friday.",
    "The company reported revenue of $12.3 billion for the quarter, beating analysts' estimates of "
    "$11.9 billion.",
    "Dr. Sarah O'Neill, a researcher at the university, said the vaccine was 94% effective in "
    "trials involving 30,000 people.",
    "Flooding in southern Spain has killed at least 95 people, and dozens more are missing, "
    "officials said.",
    "The European Commission fined the tech giant €1.8 billion for abusing its dominant position "
    "in the music streaming market.",
    'Mr. Johnson, 58, told reporters outside No. 10 that he would not resign "under any '
    'circumstances".',
    "Oil prices climbed more than 3% after OPEC+ agreed to extend production cuts until the end of "
    "2025.",
    "The U.N. Security Council will meet on Monday to discuss the humanitarian situation in Gaza, "
    "diplomats said.",
    "Shares of the carmaker fell 7.2% in early trading in New York after it cut its full-year "
    "forecast.",
    "Scientists say global temperatures in 2023 were about 1.48°C above pre-industrial levels.",
    "A magnitude 6.1 earthquake struck off the coast of Japan at 4:15 a.m. local time, the Japan "
    "Meteorological Agency said.",
    "The government announced a £2 billion package to support households with energy bills this "
    "winter.",
    "Police arrested two men, aged 24 and 31, in connection with the robbery, according to a "
    "statement.",
    "The summit, held in Brussels on 26-27 June, ended without agreement on the EU's next "
    "long-term budget.",
    "Voters in the state will decide on Nov. 5 whether to raise the minimum wage to $15 an hour.",
    "The World Health Organization (WHO) said cases of measles rose by 79% worldwide last year.",
    'Tesla\'s CEO said the firm expects deliveries to grow "significantly" in 2025, despite a '
    "slowdown in Q3.",
    "Italy's prime minister, Giorgia Meloni, met President Zelensky in Rome on Saturday to discuss "
    "military aid.",
]

# Marian and T5 reserve ids 0, 1, 2 for <pad>, </s>, <unk> (as the real checkpoints do).
_PAD, _EOS, _UNK = "<pad>", "</s>", "<unk>"
_SPIECE_SPACE = "\u2581"
_BYTE_PIECES = 256


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _seed_everything(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def _train_sentencepiece(
    sentences: Sequence[str], *, vocab_size: int, byte_fallback: bool
) -> bytes:
    """Train a SentencePiece unigram model in memory; return the serialized model proto.

    Ids: 0 <pad>, 1 </s>, 2 <unk> (no <s>), then the 256 ``<0x..>`` byte pieces when
    ``byte_fallback``, then the learned pieces. Normalisation is the identity and whitespace is kept
    as it is, so with byte fallback every text survives an encode/decode round trip.

    SentencePiece insists on a vocabulary that holds every character of the corpus (it refuses a
    ``character_coverage`` below 0.98), which 256 byte pieces + ~90 characters exceed at
    ``vocab_size=300``. So the model is trained with room for all characters and then pruned to
    ``vocab_size`` by dropping the least probable pieces; with byte fallback, a dropped character
    is simply spelled in bytes.
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as sp_pb2

    meta = 3 + (_BYTE_PIECES if byte_fallback else 0)
    n_chars = len({ch for s in sentences for ch in s.replace(" ", _SPIECE_SPACE)})
    minimum = meta + (8 if byte_fallback else n_chars)
    if vocab_size < minimum:
        raise ValueError(f"vocab_size={vocab_size} is too small: needs at least {minimum}")

    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=writer,
        model_type="unigram",
        vocab_size=max(vocab_size, meta + n_chars + 32) if byte_fallback else vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        byte_fallback=byte_fallback,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        split_digits=False,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        pad_piece=_PAD,
        eos_piece=_EOS,
        unk_piece=_UNK,
        num_threads=1,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    proto = sp_pb2.ModelProto()
    proto.ParseFromString(writer.getvalue())
    if len(proto.pieces) > vocab_size:
        normal = sp_pb2.ModelProto.SentencePiece.NORMAL
        pieces = list(proto.pieces)
        learned = [i for i, p in enumerate(pieces) if p.type == normal]
        fixed = [i for i, p in enumerate(pieces) if p.type != normal]
        # Keep the most probable learned pieces (the score is a log-probability).
        best = sorted(learned, key=lambda i: (-pieces[i].score, i))[: vocab_size - len(fixed)]
        copies = []
        for i in sorted(fixed + best):  # original order: ids stay dense and meta ids unchanged
            piece = sp_pb2.ModelProto.SentencePiece()
            piece.CopyFrom(pieces[i])
            copies.append(piece)
        del proto.pieces[:]
        proto.pieces.extend(copies)
        proto.trainer_spec.vocab_size = len(copies)
    return proto.SerializeToString(deterministic=True)


def _invisible(text: str) -> bool:
    """True when ``text`` shows nothing: empty, whitespace only, or with control characters."""
    return not text.strip() or any(unicodedata.category(ch) in ("Cc", "Cs", "Co") for ch in text)


def _set_generation_config(
    model,
    *,
    decoder_start_token_id: int,
    eos_token_id: int,
    pad_token_id: int,
    max_new_tokens: int,
    min_new_tokens: int,
    suppress_tokens: Iterable[int],
    bos_token_id: int | None = None,
) -> None:
    """Greedy, short generation that always yields visible text.

    Lengths are stored as ``max_length``/``min_length`` (decoder sequence lengths, which count the
    decoder start token: hence the ``+ 1``), like the real checkpoints do, rather than as
    ``max_new_tokens``/``min_new_tokens``: a ``max_new_tokens`` in generation_config.json would
    silently win over a ``max_length`` passed to ``generate()``, whereas ``max_length`` here is
    overridden by either argument given at call time.
    """
    from transformers import GenerationConfig

    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be at least 1")
    max_position_embeddings = getattr(model.config, "max_position_embeddings", None)
    if max_position_embeddings is not None and max_new_tokens + 1 > max_position_embeddings:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} does not fit in max_position_embeddings="
            f"{max_position_embeddings}"
        )
    model.generation_config = GenerationConfig(
        decoder_start_token_id=decoder_start_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        forced_eos_token_id=eos_token_id,
        max_length=max_new_tokens + 1,
        min_length=min(max(min_new_tokens, 0), max_new_tokens) + 1,
        num_beams=1,
        do_sample=False,
        suppress_tokens=sorted(set(suppress_tokens)),
    )


def _check_window(model_max_length: int, max_position_embeddings: int | None) -> None:
    if model_max_length < 4:
        raise ValueError("model_max_length must be at least 4")
    if max_position_embeddings is not None and model_max_length > max_position_embeddings:
        raise ValueError(
            f"model_max_length={model_max_length} exceeds max_position_embeddings="
            f"{max_position_embeddings}"
        )


def _prepare(out_dir: str | os.PathLike[str]) -> pathlib.Path:
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


# --------------------------------------------------------------------------------------------------
# Marian
# --------------------------------------------------------------------------------------------------


def build_marian(
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
    """A MarianMTModel + MarianTokenizer saved to ``out_dir`` (returned as a Path).

    The tokenizer is a SentencePiece unigram model trained on :data:`NEWS_CORPUS` with byte fallback
    and identity normalisation (so any text tokenizes and round-trips), stored as the
    ``source.spm``/``target.spm``/``vocab.json`` layout of the Helsinki-NLP checkpoints, with shared
    vocabularies. Ids: 0 ``<pad>`` (also the decoder start), 1 ``</s>``, 2 ``<unk>``.
    ``vocab_size`` is an upper bound: the trainer may stop a few pieces short on this small corpus;
    the model's vocabulary always equals the tokenizer's.
    """
    from sentencepiece import SentencePieceProcessor
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    _check_window(model_max_length, max_position_embeddings)
    out = _prepare(out_dir)

    proto = _train_sentencepiece(NEWS_CORPUS, vocab_size=vocab_size, byte_fallback=True)
    (out / "source.spm").write_bytes(proto)
    (out / "target.spm").write_bytes(proto)
    sp = SentencePieceProcessor(model_proto=proto)
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    # vocab.json maps pieces to model ids; here they coincide with the SentencePiece ids.
    vocab = {piece: i for i, piece in enumerate(pieces)}
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=2), "utf-8")

    with warnings.catch_warnings():
        # MarianTokenizer asks for sacremoses (punctuation normalisation); not needed here.
        warnings.filterwarnings("ignore", message=".*sacremoses", category=UserWarning)
        tokenizer = MarianTokenizer(
            source_spm=str(out / "source.spm"),
            target_spm=str(out / "target.spm"),
            vocab=str(out / "vocab.json"),
            unk_token=_UNK,
            eos_token=_EOS,
            pad_token=_PAD,
            model_max_length=model_max_length,
        )
    tokenizer.save_pretrained(out)

    pad_id, eos_id, unk_id = vocab[_PAD], vocab[_EOS], vocab[_UNK]
    config = MarianConfig(
        vocab_size=len(vocab),
        decoder_vocab_size=len(vocab),
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=ffn_dim,
        decoder_ffn_dim=ffn_dim,
        max_position_embeddings=max_position_embeddings,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        init_std=init_std,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        decoder_start_token_id=pad_id,
        forced_eos_token_id=eos_id,
        bos_token_id=None,
    )
    _seed_everything(seed)
    model = MarianMTModel(config).eval()

    suppress = {pad_id, unk_id}
    for i, piece in enumerate(pieces):
        if sp.is_byte(i) or sp.is_unknown(i) or _invisible(piece.replace(_SPIECE_SPACE, " ")):
            suppress.add(i)
    suppress.discard(eos_id)
    _set_generation_config(
        model,
        decoder_start_token_id=pad_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        suppress_tokens=suppress,
    )
    model.save_pretrained(out)
    return out


# --------------------------------------------------------------------------------------------------
# BART
# --------------------------------------------------------------------------------------------------

_BART_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0..4, as in facebook/bart-*


def build_bart(
    out_dir: str | os.PathLike[str],
    *,
    vocab_size: int = 400,
    d_model: int = 32,
    layers: int = 1,
    heads: int = 2,
    ffn_dim: int = 64,
    max_position_embeddings: int = 96,
    model_max_length: int = 80,
    max_new_tokens: int = 24,
    min_new_tokens: int = 4,
    init_std: float = 0.5,
    seed: int = 0,
) -> pathlib.Path:
    """A BartForConditionalGeneration + byte-level BPE tokenizer saved to ``out_dir``.

    The tokenizer is trained with the ``tokenizers`` library on :data:`NEWS_CORPUS` (256-byte
    initial alphabet, so any text round-trips) and saved as a ``BartTokenizer`` (in transformers 5
    an alias of ``RobertaTokenizer``, so ``tokenizer_config.json`` names ``RobertaTokenizer``) as a
    single ``tokenizer.json``. Ids as in
    facebook/bart-*: 0 ``<s>``, 1 ``<pad>``, 2 ``</s>`` (also the decoder start), 3 ``<unk>``,
    4 ``<mask>``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import BartConfig, BartForConditionalGeneration, BartTokenizer

    _check_window(model_max_length, max_position_embeddings)
    out = _prepare(out_dir)

    if vocab_size < _BYTE_PIECES + len(_BART_SPECIALS) + 8:
        raise ValueError(f"vocab_size={vocab_size} is too small for a byte-level BPE")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=_BART_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(NEWS_CORPUS, trainer=trainer)
    model_json = json.loads(bpe.to_str())["model"]
    vocab: dict[str, int] = model_json["vocab"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model_json["merges"]]

    tokenizer = BartTokenizer(
        vocab=vocab,
        merges=merges,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        add_prefix_space=False,
        model_max_length=model_max_length,
    )
    tokenizer.save_pretrained(out)

    bos_id, pad_id, eos_id = vocab["<s>"], vocab["<pad>"], vocab["</s>"]
    unk_id, mask_id = vocab["<unk>"], vocab["<mask>"]
    config = BartConfig(
        vocab_size=len(vocab),
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=ffn_dim,
        decoder_ffn_dim=ffn_dim,
        max_position_embeddings=max_position_embeddings,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        init_std=init_std,
        pad_token_id=pad_id,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        decoder_start_token_id=eos_id,
        forced_eos_token_id=eos_id,
        tie_word_embeddings=True,
    )
    _seed_everything(seed)
    model = BartForConditionalGeneration(config).eval()

    # Suppress everything that decodes to nothing visible on its own: the special tokens other than
    # </s>, whitespace-only tokens and byte tokens that are not a complete UTF-8 sequence.
    byte_decoder = {ch: b for b, ch in _bytes_to_unicode().items()}
    suppress = {bos_id, pad_id, unk_id, mask_id}
    for token, i in vocab.items():
        if token in _BART_SPECIALS:
            continue
        try:
            text = bytes(byte_decoder[ch] for ch in token).decode("utf-8")
        except (KeyError, UnicodeDecodeError):
            suppress.add(i)
            continue
        if _invisible(text):
            suppress.add(i)
    _set_generation_config(
        model,
        decoder_start_token_id=eos_id,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        suppress_tokens=suppress,
    )
    model.save_pretrained(out)
    return out


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte → printable character table used by byte-level BPE."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


# --------------------------------------------------------------------------------------------------
# T5
# --------------------------------------------------------------------------------------------------

T5_SUMMARIZE_PREFIX = "summarize: "


def build_t5(
    out_dir: str | os.PathLike[str],
    *,
    vocab_size: int = 200,
    d_model: int = 32,
    d_kv: int | None = None,
    layers: int = 1,
    heads: int = 2,
    ffn_dim: int = 64,
    model_max_length: int = 48,
    max_new_tokens: int = 24,
    min_new_tokens: int = 4,
    prefix: str = T5_SUMMARIZE_PREFIX,
    initializer_factor: float = 5.0,
    seed: int = 0,
) -> pathlib.Path:
    """A T5ForConditionalGeneration + T5Tokenizer saved to ``out_dir``, for testing prefix handling.

    ``config.task_specific_params["summarization"]["prefix"]`` is ``prefix`` ("summarize: "), as in
    the t5-* checkpoints. The tokenizer is a Unigram vocabulary trained on :data:`NEWS_CORPUS` (plus
    the prefix) with no extra sentinel ids. Note that transformers 5's ``T5Tokenizer`` always
    rebuilds its backend without byte fallback, so characters never seen in training encode to
    ``<unk>`` (as with real T5) — it never crashes, but it does not round-trip everything.
    T5 has relative positions, so there is no ``max_position_embeddings``; ``model_max_length`` is
    the only window. Ids: 0 ``<pad>`` (also the decoder start), 1 ``</s>``, 2 ``<unk>``.
    """
    from sentencepiece import SentencePieceProcessor
    from sentencepiece import sentencepiece_model_pb2 as sp_pb2
    from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

    _check_window(model_max_length, None)
    out = _prepare(out_dir)

    sentences = [prefix + s for s in NEWS_CORPUS]
    proto = _train_sentencepiece(sentences, vocab_size=vocab_size, byte_fallback=False)
    parsed = sp_pb2.ModelProto()
    parsed.ParseFromString(proto)
    sp_vocab = [(p.piece, float(p.score)) for p in parsed.pieces]
    tokenizer = T5Tokenizer(
        vocab=sp_vocab,
        eos_token=_EOS,
        unk_token=_UNK,
        pad_token=_PAD,
        extra_ids=0,
        model_max_length=model_max_length,
    )
    tokenizer.save_pretrained(out)

    sp = SentencePieceProcessor(model_proto=proto)
    pad_id, eos_id, unk_id = 0, 1, 2
    assert sp.id_to_piece(pad_id) == _PAD and sp.id_to_piece(eos_id) == _EOS
    config = T5Config(
        vocab_size=len(sp_vocab),
        d_model=d_model,
        d_kv=d_kv or max(1, d_model // heads),
        d_ff=ffn_dim,
        num_layers=layers,
        num_decoder_layers=layers,
        num_heads=heads,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=max(16, 2 ** math.ceil(math.log2(model_max_length))),
        dropout_rate=0.0,
        initializer_factor=initializer_factor,
        feed_forward_proj="relu",
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        decoder_start_token_id=pad_id,
        tie_word_embeddings=True,
        task_specific_params={
            "summarization": {
                "prefix": prefix,
                "max_length": max_new_tokens + 1,
                "min_length": min(min_new_tokens, max_new_tokens) + 1,
                "num_beams": 1,
            }
        },
    )
    _seed_everything(seed)
    model = T5ForConditionalGeneration(config).eval()

    suppress = {pad_id, unk_id}
    for i in range(sp.get_piece_size()):
        if (
            sp.is_control(i)
            or sp.is_unknown(i)
            or _invisible(sp.id_to_piece(i).replace(_SPIECE_SPACE, " "))
        ):
            suppress.add(i)
    suppress.discard(eos_id)
    _set_generation_config(
        model,
        decoder_start_token_id=pad_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        suppress_tokens=suppress,
    )
    model.save_pretrained(out)
    return out


# --------------------------------------------------------------------------------------------------
# Decoder-only chat models (Qwen2, Llama)
# --------------------------------------------------------------------------------------------------

_CHATML_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0..2, as Qwen2 orders them
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _build_decoder_only(
    out_dir: str | os.PathLike[str],
    *,
    architecture: str,
    vocab_size: int,
    hidden_size: int,
    layers: int,
    heads: int,
    kv_heads: int,
    intermediate_size: int,
    max_position_embeddings: int,
    init_std: float,
    seed: int,
) -> pathlib.Path:
    from transformers import (
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    out = _prepare(out_dir)
    tokenizer = _byte_level_chat_tokenizer(
        _CHATML_SPECIALS,
        vocab_size,
        max_position_embeddings,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        bos=None,
        chat_template=CHATML_TEMPLATE,
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.save_pretrained(out)

    vocab = tokenizer.get_vocab()
    pad_id, eos_id = vocab["<|endoftext|>"], vocab["<|im_end|>"]
    common = dict(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        initializer_range=init_std,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    if architecture == "qwen2":
        config, model_class = Qwen2Config(**common), Qwen2ForCausalLM
    else:
        config, model_class = LlamaConfig(**common), LlamaForCausalLM
    _seed_everything(seed)
    model = model_class(config).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=eos_id, pad_token_id=pad_id, do_sample=False, num_beams=1
    )
    model.save_pretrained(out)
    return out


def build_tiny_qwen2(
    out_dir: str | os.PathLike[str],
    *,
    vocab_size: int = 400,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate_size: int = 128,
    max_position_embeddings: int = 256,
    init_std: float = 0.2,
    seed: int = 0,
) -> pathlib.Path:
    """A random Qwen2ForCausalLM + byte-level BPE (ChatML template) saved to ``out_dir``.

    Loads with ``AutoTokenizer`` / ``AutoModelForCausalLM``; ``<|im_end|>`` is its EOS. Grouped-query
    attention (``kv_heads`` < ``heads``) as in Qwen2.5. Output is garbage text, deterministic.
    """
    return _build_decoder_only(
        out_dir, architecture="qwen2", vocab_size=vocab_size, hidden_size=hidden_size,
        layers=layers, heads=heads, kv_heads=kv_heads, intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings, init_std=init_std, seed=seed,
    )  # fmt: skip


def build_tiny_llama(
    out_dir: str | os.PathLike[str],
    *,
    vocab_size: int = 400,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate_size: int = 128,
    max_position_embeddings: int = 256,
    init_std: float = 0.2,
    seed: int = 0,
) -> pathlib.Path:
    """A random LlamaForCausalLM with the same tokenizer and template as `build_tiny_qwen2`."""
    return _build_decoder_only(
        out_dir, architecture="llama", vocab_size=vocab_size, hidden_size=hidden_size,
        layers=layers, heads=heads, kv_heads=kv_heads, intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings, init_std=init_std, seed=seed,
    )  # fmt: skip


# Chat models for the instruction-model path (tests/test_instruct.py): a choice of chat template
# (None: none), Llama 3 special tokens for Llama.

LLAMA3_TEMPLATE = (
    "{{ '<|begin_of_text|>' }}{% for message in messages %}{{ '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
_LLAMA_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]


def _byte_level_chat_tokenizer(
    specials: list[str],
    vocab_size: int,
    model_max_length: int,
    *,
    eos: str,
    pad: str,
    bos: str | None,
    chat_template: str | None,
    additional_special_tokens: list[str] | None = None,
):
    """A byte-level BPE (any text round-trips) trained on NEWS_CORPUS, as a fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(NEWS_CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=eos,
        pad_token=pad,
        bos_token=bos,
        model_max_length=model_max_length,
        **(
            {"additional_special_tokens": additional_special_tokens}
            if additional_special_tokens
            else {}
        ),
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def _build_chat(
    out_dir,
    *,
    architecture: str,
    chat_template: str | None,
    vocab_size: int,
    hidden_size: int,
    layers: int,
    heads: int,
    kv_heads: int,
    max_position_embeddings: int,
    max_new_tokens: int,
    seed: int,
) -> pathlib.Path:
    import torch
    from transformers import GenerationConfig

    out = _prepare(out_dir)
    if architecture == "qwen2":
        from transformers import Qwen2Config as ConfigClass
        from transformers import Qwen2ForCausalLM as ModelClass

        specials, eos, pad, bos = _CHATML_SPECIALS, "<|im_end|>", "<|endoftext|>", None
    else:
        from transformers import LlamaConfig as ConfigClass
        from transformers import LlamaForCausalLM as ModelClass

        specials, eos, pad, bos = _LLAMA_SPECIALS, "<|eot_id|>", "<|end_of_text|>", None
    tokenizer = _byte_level_chat_tokenizer(
        specials,
        vocab_size,
        max_position_embeddings,
        eos=eos,
        pad=pad,
        bos=bos,
        chat_template=chat_template,
    )
    tokenizer.save_pretrained(out)
    vocab = tokenizer.get_vocab()
    eos_id, pad_id = vocab[eos], vocab[pad]
    config = ConfigClass(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_position_embeddings,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        tie_word_embeddings=True,
    )
    _seed_everything(seed)
    torch.manual_seed(seed)
    model = ModelClass(config).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=eos_id, pad_token_id=pad_id, do_sample=False, max_new_tokens=max_new_tokens
    )
    model.save_pretrained(out)
    return out


def build_tiny_qwen2_chat(
    out_dir,
    *,
    chat_template: str | None = CHATML_TEMPLATE,
    vocab_size: int = 400,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    max_position_embeddings: int = 1024,
    max_new_tokens: int = 24,
    seed: int = 0,
) -> pathlib.Path:
    """A tiny random Qwen2ForCausalLM with a byte-level BPE tokenizer and a ChatML chat template
    (None: no chat template), saved with save_pretrained; loads with the Auto classes, offline."""
    return _build_chat(
        out_dir,
        architecture="qwen2",
        chat_template=chat_template,
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        max_position_embeddings=max_position_embeddings,
        max_new_tokens=max_new_tokens,
        seed=seed,
    )


def build_tiny_llama_chat(
    out_dir,
    *,
    chat_template: str | None = LLAMA3_TEMPLATE,
    vocab_size: int = 400,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    max_position_embeddings: int = 1024,
    max_new_tokens: int = 24,
    seed: int = 0,
) -> pathlib.Path:
    """A tiny random LlamaForCausalLM with a byte-level BPE tokenizer and a Llama 3 style chat
    template, saved with save_pretrained; loads with the Auto classes, offline."""
    return _build_chat(
        out_dir,
        architecture="llama",
        chat_template=chat_template,
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        max_position_embeddings=max_position_embeddings,
        max_new_tokens=max_new_tokens,
        seed=seed,
    )
