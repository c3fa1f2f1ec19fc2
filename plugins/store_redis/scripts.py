"""Run the store's Lua scripts by their SHA, several calls at a time, on one node or a cluster.

On one node the calls go in one pipeline (one round trip). A cluster refuses scripts in
pipelines, so there they go out all at once, each to the node of its keys' slot (one round
trip of latency). A node that lost the script (restarted, failed over) gets it loaded again
and the calls run again: the writes are guarded by offsets, the reads change nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from importlib.resources import files
from typing import Any

import msgspec
from redis import exceptions as redis_errors

from plugins.store_redis.fold import KeyList

Call = tuple[KeyList, Any]  # the keys and the JSON-able argument of one script call


class LuaScript:
    def __init__(self, filename: str) -> None:
        self.text = files("plugins.store_redis").joinpath(filename).read_text()
        self.sha: str | None = None

    async def run(self, client: Any, cluster: bool, calls: Sequence[Call]) -> list[Any]:
        if not calls:
            return []
        for attempt in (1, 2):
            if self.sha is None:
                self.sha = await client.script_load(self.text)
            args = [
                (self.sha, len(keys.keys), *keys.keys, msgspec.json.encode(argument))
                for keys, argument in calls
            ]
            try:
                if cluster:
                    return list(await asyncio.gather(*(client.evalsha(*a) for a in args)))
                pipe = client.pipeline(transaction=False)
                for call_args in args:
                    pipe.evalsha(*call_args)
                return list(await pipe.execute())
            except redis_errors.NoScriptError:
                if attempt == 2:
                    raise
                self.sha = None
        raise AssertionError("unreachable")
