"""One convention for the numbers JSON cannot hold (NaN, +-inf), in every file loralab writes.

Written as ``null`` (strict JSON: every reader parses it, ``allow_nan=False`` holds), read back
as NaN: an undefined metric (a PCC of constant answers), a NaN loss. Files written before
this convention held ``"nan"``/``"inf"`` strings; :func:`to_float` reads those too.
"""

from __future__ import annotations

import math
from typing import Any


def jsonable(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (dicts, lists and tuples walked)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def to_float(value: Any) -> float:
    """A number as written by :func:`jsonable` (or an older ``"nan"``/``"inf"`` string) as a float."""
    if value is None:
        return math.nan
    return float(value)
