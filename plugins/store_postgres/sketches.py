"""Whether this database counts visitors with HyperLogLog sketches, and how.

Every sketch is built with the same parameters (sketches with different ones cannot be
unioned), passed explicitly rather than through session defaults, which a transaction-mode
pooler would not keep: log2m 16 gives about 0.4 % standard error, regwidth 5, and the
explicit (exact) representation up to about 5,000 distinct visitors. Counts go through
`visitor_count` (migration 0002), which corrects the estimate where raw HyperLogLog is biased.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

ADD_VISITOR = "hll_add_agg(hll_hash_text({}), 16, 5, -1, 1)"
UNION = "hll_union_agg({})"


def cardinality(sketch: str) -> str:
    return f"visitor_count({sketch})"


@dataclass(frozen=True, slots=True)
class Sketches:
    enabled: bool

    @classmethod
    def detect(cls, conn: psycopg.Connection) -> Sketches:
        """On when the migration could add the sketch columns (the extension was there)."""
        row = conn.execute(
            "SELECT 1 FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'rollup_site'"
            " AND column_name = 'visitors'"
        ).fetchone()
        return cls(enabled=row is not None)
