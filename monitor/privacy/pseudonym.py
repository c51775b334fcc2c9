"""Author pseudonyms. Pure.

An author id becomes ``h:`` + the first 128 bits (32 hex digits) of HMAC-SHA256 under the
deployment's secret author key, before anything is stored beyond ``posts.raw``. The same author
gives the same pseudonym under one key (so distinct authors can still be counted), and nobody
without the key can test a guess ("is did:plc:... in there?"), which a plain hash would allow.
No key: no author id at all.
"""

from __future__ import annotations

import hmac

PSEUDONYM_PREFIX = "h:"


def author_pseudonym(key: bytes, author_id: str) -> str:
    """``h:<32 hex>`` for a non-empty author id under ``key``; ``""`` without a key or an id."""
    if not key or not author_id:
        return ""
    # the one-shot C path (hmac.digest): a third of hmac.new(...).hexdigest()'s cost, on every post
    return (
        PSEUDONYM_PREFIX + hmac.digest(key, author_id.encode("utf-8", "surrogatepass"), "sha256").hex()[:32]
    )
