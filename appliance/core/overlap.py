"""A store's hint that its write now waits on its server: the processor's cue to overlap.

Under a backlog the processor reads the next delivery and finishes the last one (real-time
write, commit) while the persistent stores write the current one. That work is Python, as
is a store's own preparation of a write (Postgres: visit assignment, COPY encoding): run at
the same time they only take turns for the GIL and the write takes longer. So the processor
starts it when a store says the rest of its write is the server's (`waiting_on_server`,
called from the store's thread), or when the write returns, whichever comes first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextvars import ContextVar, Token

_cue: ContextVar[Callable[[], None] | None] = ContextVar("overlap_cue", default=None)


def waiting_on_server() -> None:
    """Say, from a store's write_batch, that its Python work for the batch is done."""
    cue = _cue.get()
    if cue is not None:
        # The processor's loop may be gone (a write left running at exit): the store's
        # transaction must not fail over a hint nobody waits for.
        with contextlib.suppress(RuntimeError):
            cue()


def set_cue(cue: Callable[[], None]) -> Token[Callable[[], None] | None]:
    """Until `reset`, writes started from this context (asyncio.to_thread copies it) call
    `cue` (thread-safe) from `waiting_on_server`."""
    return _cue.set(cue)


def reset(token: Token[Callable[[], None] | None]) -> None:
    _cue.reset(token)
