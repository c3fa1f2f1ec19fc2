"""Classify a referrer URL: a known source, same-site, spam, or another site."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from appliance.core.enrich import EnrichContext
from appliance.core.event import Event

DATA = Path(__file__).parent / "data"
DIRECT = "Direct / None"
NO_MEDIUM = "(none)"
# Prefixes that mean the same site: "www.google.com" is google.com, "l.facebook.com" too.
_NOISE_PREFIXES = ("www.", "m.", "l.", "lm.", "mobile.", "amp.")


@functools.lru_cache(maxsize=8192)  # referrers and page URLs repeat a lot
def host_of(url: str) -> str:
    """The URL's host without www./m./... prefixes; "" when there is none."""
    return bare_host(urlsplit(url).hostname or "") if url else ""


def bare_host(host: str) -> str:
    host = host.lower().rstrip(".")
    for prefix in _NOISE_PREFIXES:
        if host.startswith(prefix):
            return host[len(prefix) :]
    return host


def parent_domains(host: str) -> Iterable[str]:
    """'a.b.example.com' -> itself, 'b.example.com', 'example.com' (never a bare TLD)."""
    labels = host.split(".")
    for start in range(len(labels) - 1):
        yield ".".join(labels[start:])


@dataclass(frozen=True)
class SourceTable:
    hosts: dict[str, tuple[str, str]]
    families: dict[str, tuple[str, str]]
    spam: frozenset[str]

    @classmethod
    def load(cls, extra_spam: Iterable[str] = ()) -> SourceTable:
        data = json.loads((DATA / "sources.json").read_text())
        spam_lines = (DATA / "spam.txt").read_text().splitlines()
        spam = {line.strip().lower() for line in spam_lines if line.strip() and line[0] != "#"}
        return cls(
            hosts={host: tuple(value) for host, value in data["hosts"].items()},
            families={name: tuple(value) for name, value in data["families"].items()},
            spam=frozenset(spam | {domain.lower() for domain in extra_spam}),
        )

    def is_spam(self, host: str) -> bool:
        return any(domain in self.spam for domain in parent_domains(host))

    def classify(self, host: str) -> tuple[str, str]:
        """(source, medium) of an external referrer host."""
        for domain in parent_domains(host):
            if domain in self.hosts:
                return self.hosts[domain]
        labels = host.split(".")
        # google.de, google.co.uk, search.yahoo.co.jp: a family label before a public suffix.
        for label in labels[:-1]:
            if label in self.families:
                return self.families[label]
        return host, "referral"


class ReferrerEnricher:
    name = "referrer"
    order = 300

    def __init__(self, table: SourceTable, cache_size: int = 4096) -> None:
        self.table = table
        self._host_verdict = functools.lru_cache(maxsize=cache_size)(self._verdict)

    def _verdict(self, host: str) -> tuple[str, str] | None:
        """None for spam, else (source, medium)."""
        return None if self.table.is_spam(host) else self.table.classify(host)

    def enrich(self, event: Event, context: EnrichContext) -> Event | None:
        host = host_of(event.referrer)
        if host and self._same_site(host, event, context.site_domain):
            host = ""
            event.referrer = ""
        if not host:
            event.referrer = ""
            event.referrer_source = event.utm_source or DIRECT
            event.referrer_medium = event.utm_medium or NO_MEDIUM
            return event
        verdict = self._host_verdict(host)
        if verdict is None:
            return None
        event.referrer_source, event.referrer_medium = verdict
        return event

    @staticmethod
    def _same_site(host: str, event: Event, site_domain: str) -> bool:
        page = host_of(event.url)
        return host in (site_domain, page) or host.endswith("." + site_domain)
