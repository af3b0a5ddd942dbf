"""Language tokens of multilingual translation models: M2M100, NLLB, mBART-50 and multi-target Marian."""

from collections.abc import Mapping

from ..errors import InvalidArgument
from ..languages import base, fallbacks, normalize

# ISO 639-1 -> the codes each family uses, for the languages a newsroom meets most.
NLLB_CODES = {
    "ar": "arb_Arab", "bg": "bul_Cyrl", "ca": "cat_Latn", "cs": "ces_Latn", "da": "dan_Latn",
    "de": "deu_Latn", "el": "ell_Grek", "en": "eng_Latn", "es": "spa_Latn", "et": "est_Latn",
    "fa": "pes_Arab", "fi": "fin_Latn", "fr": "fra_Latn", "gl": "glg_Latn", "he": "heb_Hebr",
    "hi": "hin_Deva", "hr": "hrv_Latn", "hu": "hun_Latn", "id": "ind_Latn", "it": "ita_Latn",
    "ja": "jpn_Jpan", "ko": "kor_Hang", "lt": "lit_Latn", "lv": "lvs_Latn", "nl": "nld_Latn",
    "no": "nob_Latn", "pl": "pol_Latn", "pt": "por_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl",
    "sk": "slk_Latn", "sl": "slv_Latn", "sr": "srp_Cyrl", "sv": "swe_Latn", "tr": "tur_Latn",
    "uk": "ukr_Cyrl", "vi": "vie_Latn", "zh": "zho_Hans",
    # Traditional Chinese, by script or by the regions that write it.
    "zh-Hant": "zho_Hant", "zh-TW": "zho_Hant", "zh-HK": "zho_Hant", "zh-MO": "zho_Hant",
}  # fmt: skip
MBART50_CODES = {
    "ar": "ar_AR", "cs": "cs_CZ", "de": "de_DE", "en": "en_XX", "es": "es_XX", "et": "et_EE",
    "fi": "fi_FI", "fr": "fr_XX", "hi": "hi_IN", "it": "it_IT", "ja": "ja_XX", "ko": "ko_KR",
    "lt": "lt_LT", "lv": "lv_LV", "nl": "nl_XX", "ro": "ro_RO", "ru": "ru_RU", "tr": "tr_TR",
    "vi": "vi_VN", "zh": "zh_CN", "pl": "pl_PL", "pt": "pt_XX", "sv": "sv_SE", "uk": "uk_UA",
    "he": "he_IL", "id": "id_ID", "fa": "fa_IR", "hr": "hr_HR",
}  # fmt: skip
ISO639_3 = {
    "pt": "por", "en": "eng", "es": "spa", "fr": "fra", "de": "deu", "it": "ita", "ro": "ron",
    "ca": "cat", "gl": "glg", "nl": "nld", "ru": "rus", "zh": "zho", "ar": "ara",
}  # fmt: skip


class LanguageTokens:
    """How one multilingual model is told its source and target languages."""

    def __init__(
        self, tokenizer, family: str, codes: Mapping[str, str], overrides: Mapping[str, str]
    ):
        self.tokenizer = tokenizer
        self.family = family
        # Request tags arrive normalised ("pt_br" -> "pt-BR"); so must the keys, or they never match.
        self.codes = {**codes, **{_tag(key): code for key, code in overrides.items()}}
        self.input_overhead = 2 if family == "marian" else 0

    @classmethod
    def detect(cls, tokenizer, overrides: Mapping[str, str]) -> "LanguageTokens | None":
        """The scheme this tokenizer uses, or None for a single-pair model."""
        kind = type(tokenizer).__name__.lower()
        if "nllb" in kind:
            return cls(tokenizer, "nllb", NLLB_CODES, overrides)
        if "m2m100" in kind:
            return cls(tokenizer, "m2m100", {}, overrides)
        if "mbart" in kind:
            return cls(tokenizer, "mbart", MBART50_CODES, overrides)
        vocab = tokenizer.get_vocab()
        if any(t.startswith(">>") and t.endswith("<<") for t in vocab):
            return cls(tokenizer, "marian", {}, overrides)
        return None

    def code(self, language: str | None) -> str | None:
        """The model's code for a language tag ('pt-BR' -> 'por_Latn', 'pt_XX', '>>pt_br<<'...)."""
        if language is None:
            return None
        if language in self.codes:
            return self.codes[language]
        if self.family == "marian":
            vocab = self.tokenizer.get_vocab()
            for candidate in (
                language.replace("-", "_").lower(),
                base(language),
                ISO639_3.get(base(language)),
            ):
                if candidate and f">>{candidate}<<" in vocab:
                    return f">>{candidate}<<"
            return None
        if self.family == "m2m100":
            return base(language)
        for tag in fallbacks(language):  # "zh-Hant-TW" -> "zh-Hant" -> "zh"
            if tag in self.codes:
                return self.codes[tag]
        return None

    def missing(self, pairs) -> list[str]:
        """The configured languages of `pairs` that this model has no code for (a load error,
        not a stale or wrong token at request time). Marian is exempt: a target without a
        >>xx<< token is sent without one, as multi-source models with stray tags expect."""
        if self.family == "marian":
            return []
        languages = [language for pair in pairs for language in pair]
        out = []
        for language in dict.fromkeys(languages):
            code = self.code(language)
            if code is None:
                out.append(language)
            elif self.family == "m2m100" and code not in self.tokenizer.lang_code_to_id:
                out.append(language)
            elif self.family in ("nllb", "mbart") and code not in self.tokenizer.get_vocab():
                out.append(language)
        return out

    def text_prefix(self, target: str | None) -> str:
        """Marian multi-target models take the target as a leading >>xx<< token."""
        if self.family != "marian":
            return ""
        code = self.code(target)
        return f"{code} " if code else ""

    def set_source(self, source: str | None) -> None:
        code = self.code(source)
        if code and self.family != "marian":
            self.tokenizer.src_lang = code

    def generate_kwargs(self, target: str | None) -> dict:
        code = self.code(target)
        if not code or self.family == "marian":
            return {}
        if self.family == "m2m100":
            return {"forced_bos_token_id": self.tokenizer.get_lang_id(code)}
        return {"forced_bos_token_id": self.tokenizer.convert_tokens_to_ids(code)}


def _tag(key: str) -> str:
    """A `language_codes` key in the normalised form of request tags; left as is if not a tag."""
    try:
        return normalize(key, "language_codes")
    except InvalidArgument:
        return key
