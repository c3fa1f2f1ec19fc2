"""Cut a time range into what the rollups hold: whole UTC days, whole hours, and the partial
hours at its edges, which only raw rows can answer.

Rollup rows are keyed by `width` (3600 or 86400) and bucket start; a raw piece has width 0.
A 30-day range becomes about 30 day rows, up to 46 hour rows and two pieces under an hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from appliance.core.aggregation import DAY, HOUR

RAW = 0


class Piece(NamedTuple):
    width: int  # DAY, HOUR or RAW
    start: int  # inclusive, epoch seconds
    end: int  # exclusive


def _ceil(ts: int, width: int) -> int:
    return -(-ts // width) * width


def split(start: int, end: int) -> list[Piece]:
    """Pieces covering [start, end) exactly, each answered by one source."""
    if end <= start:
        return []
    first_hour, last_hour = _ceil(start, HOUR), end // HOUR * HOUR
    if first_hour >= last_hour:
        return [Piece(RAW, start, end)]
    pieces = [Piece(RAW, start, first_hour)]
    first_day, last_day = _ceil(first_hour, DAY), last_hour // DAY * DAY
    if first_day < last_day:
        pieces += [
            Piece(HOUR, first_hour, first_day),
            Piece(DAY, first_day, last_day),
            Piece(HOUR, last_day, last_hour),
        ]
    else:
        pieces.append(Piece(HOUR, first_hour, last_hour))
    pieces.append(Piece(RAW, last_hour, end))
    return [piece for piece in pieces if piece.end > piece.start]


class Pieces(NamedTuple):
    """Columns for `unnest(...) AS p(t, width, lo, hi)`: each piece tagged with its bucket."""

    t: list[int]
    width: list[int]
    lo: list[int]
    hi: list[int]


def for_buckets(buckets: Sequence[int], end: int) -> Pieces:
    """The pieces of every time-series bucket; bucket i runs to bucket i+1 (the last to end)."""
    pieces = Pieces([], [], [], [])
    for index, bucket in enumerate(buckets):
        bucket_end = buckets[index + 1] if index + 1 < len(buckets) else end
        for piece in split(bucket, bucket_end):
            pieces.t.append(bucket)
            pieces.width.append(piece.width)
            pieces.lo.append(piece.start)
            pieces.hi.append(piece.end)
    return pieces
