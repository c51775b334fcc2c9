"""Language of a post, for posts whose source did not say: py3langid (offline, model in the wheel).

Social posts are short and full of handles, links and hashtags, which say nothing about the
language and mislead a character n-gram model; they are removed first. A text with too few
letters, or a guess under ``min_confidence``, is ``"und"`` (undetermined) rather than a coin toss.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

UNDETERMINED = "und"
_NOISE = re.compile(r"https?://\S+|www\.\S+|[@#][\w.]+|\S+@\S+\.\w+", re.UNICODE)
_MIN_LETTERS = 12


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect(text: str, min_confidence: float = 0.5) -> str:
    """ISO 639-1 code of ``text``'s language, or ``"und"``."""
    clean = _NOISE.sub(" ", text)
    if sum(ch.isalpha() for ch in clean) < _MIN_LETTERS:
        return UNDETERMINED
    lang, conf = _identifier().classify(clean)
    return str(lang) if conf >= min_confidence else UNDETERMINED


def post_language(declared: str, text: str) -> str:
    """The source's own language tag when it gave one (``en-US`` -> ``en``), else detected."""
    if declared and declared.lower() not in (UNDETERMINED, "x-unknown", "unknown"):
        return declared.split("-")[0].split("_")[0].lower()
    return detect(text)
