"""Personal data kept to what the figures need (docs/security.md, "Personal data and retention").

pseudonym.py   author ids -> a keyed HMAC-SHA256 pseudonym (pure)
redaction.py   e-mail addresses, card and phone numbers out of stored texts and quotes (pure)
settings.py    the ``privacy`` section: the author key (setting, file, or the local stack's
               generated one) and the retention of posts.raw and posts.dlq
"""

from monitor.privacy.pseudonym import PSEUDONYM_PREFIX, author_pseudonym
from monitor.privacy.redaction import CARD_DIGITS, card_spans, luhn_ok, redact, sample_text

__all__ = [
    "CARD_DIGITS",
    "PSEUDONYM_PREFIX",
    "author_pseudonym",
    "card_spans",
    "luhn_ok",
    "redact",
    "sample_text",
]
