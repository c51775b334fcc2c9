"""Process memory hygiene for long-running model processes. Pure stdlib.

A forward pass allocates tens of megabytes of activations whose shapes change with every batch
(posts x longest post), and a worker's resident memory crept up batch after batch (measured:
+1 GB over 150 batches of random sizes with the default model in bf16) for two reasons:

* oneDNN caches a compiled primitive per operator *shape* (1024 of them by default): with a new
  (batch, length) pair nearly every batch, that cache only grows. `limit_growth()` caps it
  (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``, unless already set) before torch starts;
* glibc keeps freed blocks in per-thread arenas (the model runs in its own thread): `trim()`
  hands free pages back to the OS (``malloc_trim(0)``, every arena, a few ms per batch) and
  `limit_growth()` caps the number of arenas.

Elsewhere than glibc on Linux the glibc parts do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
        return libc
    except (OSError, AttributeError):
        return None


ONEDNN_PRIMITIVE_CACHE = 64
_M_ARENA_MAX = -8


def limit_growth() -> None:
    """Call once at process start, before torch is imported."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_PRIMITIVE_CACHE))
    libc = _libc()
    if libc is not None:
        try:
            libc.mallopt(_M_ARENA_MAX, 2)
        except (OSError, AttributeError):  # not glibc
            log.debug("mallopt unavailable")


def trim() -> bool:
    """Return freed heap memory to the OS; False where the C library cannot."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))
