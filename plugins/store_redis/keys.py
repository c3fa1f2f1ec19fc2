"""The key layout, in one place: every key of a site carries the hash tag {site:ID}.

The tag puts all of a site's keys in one Redis Cluster slot, so the Lua script that applies
a site's part of a flush (data, offset guard, TTLs) runs atomically on one node. The
appliance-wide keys (what the processor reads to resume, the coverage) share the tag
{applied}.

    P:{site:S}:m:B             hash   pageviews, events, e:<name> (custom events by name)
    P:{site:S}:m:B:visitors    HLL    visitor ids of any event
    P:{site:S}:m:B:sessions    HLL    session ids
    P:{site:S}:m:B:paths       zset   pageviews per path
    P:{site:S}:m:B:referrers   zset   pageviews per referrer source
    P:{site:S}:m:B:pv:<hash>   HLL    visitor ids of the pageviews of one path (minute only)
    P:{site:S}:h:B...          the same per hour, without the per-path HLLs
    P:{site:S}:applied         hash   "topic partition" -> last offset applied to this site
    P:{site:S}:latest          string newest event time of the site
    P:{applied}:offsets:T      hash   partition -> last offset of topic T, every site applied
    P:{applied}:meta           hash   since (first complete minute), watermark (newest event)

P is `redis.key_prefix`, S the site id, B the bucket start (epoch seconds, UTC), <hash> a
16-hex-digit digest of the path (paths can be 2 KiB long). Minute keys expire
`minute_ttl_hours` after their minute ends, hour keys `hour_ttl_days` after their hour.
"""

from __future__ import annotations

import hashlib

MINUTE_KIND = "m"
HOUR_KIND = "h"


def path_digest(path: str) -> str:
    return hashlib.blake2b(path.encode(), digest_size=8).hexdigest()


def guard_field(topic: str, partition: str) -> str:
    return f"{topic} {partition}"


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def site(self, site_id: int) -> str:
        return f"{self.prefix}:{{site:{site_id}}}"

    def bucket(self, site_id: int, kind: str, start: int) -> str:
        return f"{self.site(site_id)}:{kind}:{start}"

    def counts(self, site_id: int, kind: str, start: int) -> str:
        return self.bucket(site_id, kind, start)

    def visitors(self, site_id: int, kind: str, start: int) -> str:
        return f"{self.bucket(site_id, kind, start)}:visitors"

    def sessions(self, site_id: int, kind: str, start: int) -> str:
        return f"{self.bucket(site_id, kind, start)}:sessions"

    def paths(self, site_id: int, kind: str, start: int) -> str:
        return f"{self.bucket(site_id, kind, start)}:paths"

    def referrers(self, site_id: int, kind: str, start: int) -> str:
        return f"{self.bucket(site_id, kind, start)}:referrers"

    def path_visitors(self, site_id: int, start: int, path: str) -> str:
        return f"{self.bucket(site_id, MINUTE_KIND, start)}:pv:{path_digest(path)}"

    def site_guard(self, site_id: int) -> str:
        return f"{self.site(site_id)}:applied"

    def latest(self, site_id: int) -> str:
        return f"{self.site(site_id)}:latest"

    def offsets(self, topic: str) -> str:
        return f"{self.prefix}:{{applied}}:offsets:{topic}"

    def meta(self) -> str:
        return f"{self.prefix}:{{applied}}:meta"
