"""Pseudonyms for client addresses, for the few places that must tell addresses apart.

Rate limits and login throttling count per client address, and what they count may live in
a shared store (Redis, the account database). The raw address is never stored: these
places use a keyed hash of it instead, which the appliance's secret key makes useless to
anyone without that key (an unkeyed hash of an IPv4 address is reversed by trying all 2^32).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable


def address_pseudonym(secret_key: str) -> Callable[[str], str]:
    """A function address -> 24 hex digits, stable for one secret key."""
    key = hashlib.sha256(b"appliance address pseudonym\0" + secret_key.encode()).digest()

    def pseudonym(address: str) -> str:
        return hashlib.blake2b(address.encode(), key=key, digest_size=12).hexdigest()

    return pseudonym
