"""The project's label taxonomy. Pure.

Every model's labels are mapped onto these, so aggregates and alerts speak one language.
"""

from __future__ import annotations

from typing import Final

SENTIMENTS: Final = ("negative", "neutral", "positive")
EMOTIONS: Final = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")
# A post whose top probability is below the configured confidence floor is counted here
# instead of inflating a class.
UNCERTAIN: Final = "uncertain"
# A post in a language that no configured model covers.
UNSUPPORTED: Final = "unsupported"
