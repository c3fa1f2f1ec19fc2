"""A steady load for the freshness section: `python -m bench.loadgen URL RATE SECONDS`.

Sends RATE single-event POST /api/events per second (paced every 10 ms) over keep-alive
connections to bench.example, with plain asyncio streams (no HTTP client overhead), and prints
one JSON line: sent, answered 202, other statuses, achieved rate.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from urllib.parse import urlsplit

PATHS = ["/", "/pricing", "/blog/why-privacy", "/docs/install", "/docs/api", "/signup"]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
]


def request(host: str, number: int) -> bytes:
    path = random.choice(PATHS)  # noqa: S311
    body = json.dumps({"domain": "bench.example", "path": path, "sessionId": f"s{number % 300}",
                       "url": f"https://bench.example{path}"}).encode()  # fmt: skip
    head = (
        f"POST /api/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\n"
        f"User-Agent: {AGENTS[number % len(AGENTS)]}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def connection(host: str, port: int, queue: asyncio.Queue[int], counts: dict) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    while True:
        number = await queue.get()
        writer.write(request(host, number))
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if length:
            await reader.readexactly(length)
        counts["202" if status == 202 else "other"] += 1
        queue.task_done()


async def main(url: str, rate: int, seconds: float) -> None:
    parts = urlsplit(url)
    queue: asyncio.Queue[int] = asyncio.Queue()
    counts = {"202": 0, "other": 0}
    workers = [
        asyncio.create_task(connection(parts.hostname, parts.port, queue, counts))
        for _ in range(16)
    ]
    started = time.monotonic()
    sent, tick = 0, 0.01
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate) + 1
        for number in range(sent, due):
            queue.put_nowait(number)
        sent = max(sent, due)
        await asyncio.sleep(tick)
    await asyncio.wait_for(queue.join(), 30)
    for worker in workers:
        worker.cancel()
    took = time.monotonic() - started
    print(json.dumps({"sent": sent, "accepted": counts["202"], "other": counts["other"],
                      "events_per_s": round(counts["202"] / took)}))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
