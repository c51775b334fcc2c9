"""Language of a post, for posts whose source did not say: py3langid (offline, model in the wheel).

Social posts are short and full of handles, links and hashtags, which say nothing about the
language and mislead a character n-gram model; they are removed first. A text with too few
letters, or a guess under ``min_confidence``, is ``"und"`` (undetermined) rather than a coin toss.

Cost is bounded whatever the post: the detector sees the first `DETECT_CHARS` characters (a
post's language shows in its first few sentences; the model sees fewer still), and the noise
pattern runs on RE2 (`monitor.patterns.LANGUAGE_NOISE`, linear time: the e-mail alternative
``\S+@\S+\.\w+`` it replaces backtracked cubically, 0.6 s at 1,600 characters).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from monitor.messages import LANGUAGES, lang_tag
from monitor.patterns import LANGUAGE_NOISE

UNDETERMINED = "und"
DETECT_CHARS = 1_000
_MIN_LETTERS = 12


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect(text: str, min_confidence: float = 0.5) -> str:
    """ISO 639-1 code of ``text``'s language, or ``"und"``."""
    clean = text[:DETECT_CHARS]
    for noise in LANGUAGE_NOISE:
        clean = noise.sub(" ", clean)
    if sum(ch.isalpha() for ch in clean) < _MIN_LETTERS:
        return UNDETERMINED
    lang, conf = _identifier().classify(clean)
    return str(lang) if conf >= min_confidence and lang in LANGUAGES else UNDETERMINED


def post_language(declared: str, text: str) -> str:
    """The source's own language tag when it gave a known one (``en-US`` -> ``en``), else
    detected."""
    return lang_tag(declared) or detect(text)
