"""Pick the top rows by unique visitors while unioning as few sketches as possible.

Unioning hll sketches is the costly part of a breakdown (each group's union works on 65,536
registers), and a breakdown shows ten rows out of hundreds. Every value has a cheap upper
bound on its visitors - its visits, pageviews or events, summed without sketches - since a
visitor is counted only for having at least one of them. So: count visitors for the values
with the highest bounds, then for any other value whose bound reaches the lowest count shown;
no value left out can beat it. Usually that is one round of about three times `limit` values.
"""

from __future__ import annotations

from collections.abc import Callable

# Sketch estimates may exceed the true count by their error: keep values that could.
SKETCH_SLACK = 1.03


def candidates_by_bound(bounds: dict[str, int], limit: int) -> list[str]:
    ranked = sorted(bounds, key=lambda value: (-bounds[value], value))
    return ranked[: max(2 * limit, 20)]


def top_by_visitors(
    bounds: dict[str, int],
    limit: int,
    count_visitors: Callable[[list[str]], dict[str, int]],
    order: Callable[[str, int], tuple[object, ...]],
) -> list[tuple[str, int]]:
    """[(value, visitors)] for the `limit` best values by `order(value, visitors)`."""
    visitors = count_visitors(candidates_by_bound(bounds, limit))
    while True:
        shown = sorted(visitors, key=lambda value: order(value, visitors[value]))[:limit]
        lowest = visitors[shown[-1]] if len(shown) == limit else 0
        missing = [
            value
            for value, bound in bounds.items()
            if value not in visitors and bound * SKETCH_SLACK >= lowest
        ]
        if not missing:
            return [(value, visitors[value]) for value in shown]
        visitors |= count_visitors(missing)
        visitors |= dict.fromkeys(set(missing) - set(visitors), 0)


def ties_included(counts: dict[str, int], limit: int) -> list[str]:
    """The `limit` values with the highest counts, and every value tied with the last."""
    ranked = sorted(counts, key=lambda value: -counts[value])
    if len(ranked) <= limit:
        return ranked
    floor = counts[ranked[limit - 1]]
    return [value for value in ranked if counts[value] >= floor]
