"""Which heads of a layer pattern guidance pulls towards which pattern: a spread such as
``"first:2,previous:2,next:2,delimiter:2,period:2"`` (see ``docs/METHOD.md``, "Pattern guidance").

In every guided layer, the leading heads take the patterns in the order given and the remaining
heads stay free. The default puts two heads on each pattern, as the authors' released configuration
does for first, previous and next in an 8-head model, with the paper's delimiter and period
patterns added the same way. Kept apart from ``patterns`` (which builds the target maps, with
torch) so that settings can be checked without importing torch.
"""

from __future__ import annotations

from ..errors import ConfigError

PATTERNS = ("first", "previous", "next", "delimiter", "period")
DEFAULT_SPREAD = "first:2,previous:2,next:2,delimiter:2,period:2"


def parse_spread(spec: str, heads_per_layer: int) -> list[str | None]:
    """The pattern of each head of a layer (None for a free head) from a spread such as ``first:2,next:1``."""
    if not isinstance(spec, str):
        raise ConfigError(f"pattern spread must be text such as {DEFAULT_SPREAD!r}, got {spec!r}")
    names: list[str | None] = []
    for part in spec.split(","):
        name, _, count = part.strip().partition(":")
        if name not in PATTERNS or not count.isdigit():
            raise ConfigError(
                f"pattern spread {spec!r}: expected name:count items with names from {', '.join(PATTERNS)}"
            )
        names += [name] * int(count)
    return (names + [None] * heads_per_layer)[:heads_per_layer]
