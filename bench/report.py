"""bench/results/latest.json and latest.md (tables, targets met or missed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.common import RESULTS


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else "met" if ok else "MISSED"


def targets(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    ingest = results.get("ingest") or {}
    for name, row in ingest.items():
        label, share = ("embedded", 0.5) if "embedded" in name else ("Kafka", 0.4)
        at = name.partition("@")[2]
        base = ingest.get("starlette_trivial" + (f"@{at}" if at else "")) or {}
        if not name.startswith("appliance_") or not row.get("rps") or not base.get("rps"):
            continue
        ratio = row["rps"] / base["rps"]
        measured = f"{ratio:.0%}"
        if row.get("cpu_us_per_request") and base.get("cpu_us_per_request"):
            cpu_ratio = base["cpu_us_per_request"] / row["cpu_us_per_request"]
            measured += f" (by CPU per request: {cpu_ratio:.0%})"
        where = f", {row.get('connections')} connections"
        rows.append((f"ingest {label} >= {share:.0%} of trivial Starlette{where}", measured,
                     _mark(ratio >= share)))  # fmt: skip
    for name, row in (results.get("freshness") or {}).items():
        if "p95_ms" in row:
            rows.append((f"freshness p95 < 1 s ({name})", f"{row['p95_ms']:.0f} ms",
                         _mark(row["p95_ms"] < 1000 and not row["timeouts_10s"])))  # fmt: skip
    processor = results.get("processor") or {}
    one = processor.get("processes_1") or {}
    if "events_per_s_per_process" in one:
        measured = f"{one['events_per_s_per_process']:,}/s"
        ordered, shuffled = processor.get("store_alone"), processor.get("store_alone_shuffled")
        if ordered and shuffled and ordered.get("events_per_s") and shuffled.get("events_per_s"):
            share = shuffled["events_per_s"] / ordered["events_per_s"]
            measured += f" (the store alone runs at {share:.0%} of its rate on shuffled times)"
        rows.append(("processor >= 50,000 events/s per process (Postgres + Redis; backlog in "
                     "time order, as ingest publishes it)", measured,
                     _mark(one["events_per_s_per_process"] >= 50_000)))  # fmt: skip
    queries = results.get("queries") or {}
    for name in queries:
        data = queries.get(name) or {}
        if data.get("queries"):
            worst = max(row["p95_ms"] for row in data["queries"].values())
            events = (data.get("load") or {}).get("events") or data.get("events")
            at_scale = (events or 0) >= 10_000_000
            rows.append((f"query p95 < 100 ms at 10M ({name}, measured at {_f(events)} events)",
                         f"worst {worst:.0f} ms",
                         _mark(worst < 100) + ("" if at_scale else " (not at 10M)")))  # fmt: skip
    embedded = ingest.get("appliance_embedded") or {}
    idle, after = embedded.get("rss_idle_mib"), embedded.get("rss_idle_after_load_mib")
    if idle:
        # Idle once it has served: what an appliance in use sits at (the writer process
        # starts with the first flush, so it is not there before).
        worst = max(idle, after or 0)
        pss = embedded.get("pss_idle_after_load_mib")
        rows.append(("idle RSS of serve < 150 MB (embedded; with its writer process once it "
                     "has served)", f"{idle:.0f} MiB before load, {_f(after)} MiB after "
                     f"(PSS {_f(pss)} MiB)", _mark(worst * 1.048576 < 150)))  # fmt: skip
    return rows


def write(results: dict[str, Any], out: Path = RESULTS) -> str:
    """Write latest.json and latest.md into `out`; returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Benchmark results",
        "",
        f"{results['when']} · {results['machine']} · took {results['took_s']:.0f} s · "
        "noisy shared machine: other engineers' test suites ran beside it, so treat figures "
        "as +/- 20 %; ratios within one run are more stable than absolute numbers.",
        "",
    ]
    skipped = [f"- {k}: {v}" for k, v in results.get("not_run", {}).items()]
    if skipped:
        lines += ["Not run:", *skipped, ""]
    lines += ["## Targets", "", "| target | measured | status |", "|---|---:|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in targets(results)]

    ingest = results.get("ingest")
    if ingest:
        bases = {
            row.get("connections"): row.get("rps")
            for name, row in ingest.items()
            if name.startswith("starlette_trivial")
        }
        lines += [
            "",
            "## 1. Ingest: POST /api/events (wrk, 1 thread, "
            f"{results['seconds']} s per target after 2 s of unmeasured warm-up, events.lua)",
            "",
            "| target | connections | processes | requests/s | / Starlette | p50 ms | p99 ms "
            "| non-2xx | stored / accepted | RSS idle / load / idle after MiB "
            "| serve CPU µs/request |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, row in ingest.items():
            if "skipped" in row:
                lines.append(f"| {name} | {row.get('connections')} | skipped: {row['skipped']} "
                             "|||||||||")  # fmt: skip
                continue
            base = bases.get(row.get("connections"))
            ratio = f"{row['rps'] / base:.2f}" if base else "-"
            stored = f"{row['stored']:,} / {row['accepted']:,}" if "stored" in row else "-"
            rss = " / ".join(
                _f(row.get(key))
                for key in ("rss_idle_mib", "rss_load_mib", "rss_idle_after_load_mib")
            )
            lines.append(
                f"| {name} | {row.get('connections')} | {row['processes']} | {row['rps']:,.0f} "
                f"| {ratio} "
                f"| {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['errors']} | {stored} "
                f"| {rss} | {_f(row.get('cpu_us_per_request'))} |"
            )
        waits = [
            f"{name}: a request cycle every {row['connections'] / row['rps'] * 1000:.2f} ms per "
            f"connection, {row['ack_ms_mean']:.2f} ms of it from publishing to the broker's ack "
            "(0.5 ms of linger included)"
            for name, row in ingest.items()
            if row.get("ack_ms_mean") and row.get("rps")
        ]
        if waits:
            lines += [
                "",
                "Broker ack (mean of serve's publish-to-ack histogram over the measurement, "
                "from its /metrics): " + "; ".join(waits) + ".",
            ]
        lines += [
            "",
            "Each server gets one process: the machine has 2 cores and wrk needs one of them; "
            "`appliance serve` has no worker option (the embedded profile's in-process queue "
            "and processor live in that one process, so it cannot be forked); its SQLite "
            "flushes are written by a child process (`sqlite.writer_process`), so they use the "
            "second core instead of taking turns with the web server for the GIL. CPU and RSS "
            "of serve include that child. "
            "The Kafka profile runs `serve` + one `appliance process` (the same 2 cores are "
            "shared by wrk, serve, process and the broker). Per-site rate limit raised "
            "(all load is one site) but still checked. `stored` may exceed wrk's count by up "
            "to the connection count: requests in flight when wrk stops are answered and "
            "stored but not counted by wrk. The Kafka profile answers 202 only after the "
            "broker's ack, so with C connections it is bound by C / ack latency: the @N rows "
            "run Starlette and Kafka again with more connections. `serve CPU` is the CPU time "
            "all of the server's threads and child processes used per 2xx answer, from the "
            "start of the measurement until every 202 is stored (embedded: ingest and the "
            "SQLite writer process; Kafka: ingest and the producer): unlike requests/s it does "
            "not count time spent waiting for a core on a busy machine. Before the first "
            + (
                f"target, a throwaway Kafka deployment loads the broker for {warmup} s: a "
                "broker JVM that just started answers about a third slower for its first "
                "half-minute."
                if (warmup := results.get("broker_warmup_s", 20))
                else "target, nothing warmed the broker (--broker-warmup 0)."
            ),
        ]
        tracker = (ingest.get("appliance_embedded") or {}).get("tracker")
        if tracker:
            lines += [
                "",
                "## 6. Tracker",
                "",
                f"/tracker.js: {tracker['raw_bytes']:,} bytes, **{tracker['gzip9_bytes']:,} "
                f"bytes gzipped** (gzip -9); served with Accept-Encoding gzip: "
                f"{tracker['served_content_encoding']}, "
                f"{tracker['served_bytes_with_accept_gzip']:,} bytes.",
            ]
    enrich = results.get("enrichment")
    if enrich:
        lines += [
            "",
            f"Enrichment (all built-in enrichers, in-process): {enrich['events']:,} events, "
            f"{enrich['unique_user_agents']:.0%} never-seen user agents: mean "
            f"{enrich['mean_us']:.1f} us, p50 {enrich['p50_us']:.1f} us, p99 "
            f"{enrich['p99_us']:.1f} us per event.",
        ]

    fresh = results.get("freshness")
    if fresh:
        lines += [
            "",
            "## 2. Freshness: 202 -> visible in GET /api/analytics/kpis (period=realtime)",
            "",
            "| profile | background load events/s (202) | probes | p50 ms | p95 ms | p99 ms "
            "| max ms | timeouts | serve RSS under load MiB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, row in fresh.items():
            if "skipped" in row:
                lines.append(f"| {name} | skipped: {row['skipped']} ||||||||")
                continue
            lines.append(
                f"| {name} | {row['load']['events_per_s']:,} ({row['load']['other']} non-202) "
                f"| {row['samples']} | {row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} "
                f"| {row['max_ms']} | {row['timeouts_10s']} | {row['rss_serve_load_mib']} |"
            )

    proc = results.get("processor")
    if proc:
        backlog = proc.get("backlog", {})
        lines += [
            "",
            f"## 3. Processor: a backlog of {_f(backlog.get('events'))} events on a 6-partition "
            "topic -> Postgres + Redis",
            "",
        ]
        if "skipped" in proc:
            lines.append(f"skipped: {proc['skipped']}")
        lines += [
            "| processes | stored | events/s | per process | with start-up | start-up s "
            "| RSS of process under backlog MiB | CPU s per 1M events: process, Postgres |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for key in ("processes_1", "processes_2"):
            row = proc.get(key)
            if not row:
                continue
            if "skipped" in row:
                lines.append(f"| {key} | skipped: {row['skipped']} |||||||")
                continue
            timed_out = "" if row["complete"] else " (timed out)"
            lines.append(
                f"| {row['processes']} | {row['stored']:,}{timed_out} "
                f"| {row['events_per_s']:,} | {row['events_per_s_per_process']:,} "
                f"| {row['events_per_s_with_startup']:,} | {row['startup_to_first_flush_s']} "
                f"| {', '.join(str(r) for r in row['rss_process_backlog_mib'])} "
                f"| {row.get('process_cpu_s_per_1m')}, {row.get('postgres_cpu_s_per_1m')} |"
            )
        alone_rows = {"store_alone": "Postgres store alone",
                      "store_alone_shuffled": "Postgres store alone, times shuffled"}  # fmt: skip
        for key, label in alone_rows.items():
            alone = proc.get(key)
            if alone and "skipped" in alone:
                lines.append(f"| {label} | skipped: {alone['skipped']} |||||||")
            elif alone:
                lines.append(
                    f"| {label} | {alone['stored']:,} | {alone['events_per_s']:,} | - | - | - "
                    f"| - | {alone['process_cpu_s_per_1m']} (this process), "
                    f"{alone['postgres_cpu_s_per_1m']} |"
                )
        alone = proc.get("store_alone")
        if alone and "skipped" not in alone:
            lines += [
                "",
                "The backlog's timestamps rise in publish order over one minute, as ingest "
                "stamps them. *Postgres store alone*: the same events through the store's "
                f"`write_batch` in flushes of {alone['flush_events']:,}, in the bench's own "
                "process: no Kafka, no Redis, no processor. A processor writes each flush in "
                "one transaction on one connection after the one before (its Kafka reads and "
                "Redis writes overlap those), so a processor stays near this rate (within the "
                "machine's noise) unless what the store writes changes. *Times shuffled*: the "
                "same events with their timestamps shuffled over the minute, which no ingest "
                "publishes (the worst case for visits: an event earlier than its visit's start "
                "moves the start and the visit's index entries).",
            ]

    queries = results.get("queries")
    if queries:
        names = ["kpis", "timeseries (day)", "top-pages", "breakdown source", "breakdown country"]
        lines += [
            "",
            "## 4. Query latency over 30 days (stats API in-process), p50 / p95 ms",
            "",
            "| store | events | " + " | ".join(names) + " |",
            "|---|---:|" + "---:|" * len(names),
        ]
        labels = {"postgres": "Postgres (this run)",
                  "postgres_file": "Postgres (reused bench/results/postgres.json)",
                  "sqlite_file": "SQLite (reused bench/results/sqlite.json)"}  # fmt: skip
        for key, data in queries.items():
            label = labels.get(key, "SQLite (this run)")
            if not data:
                continue
            if "skipped" in data:
                lines.append(f"| {label} | skipped: {data['skipped']} |" + "|" * len(names))
                continue
            events = (data.get("load") or {}).get("events") or data.get("events")
            if key.endswith("_file"):
                label += f", written {data['written']}"
            rows = [(label, data["queries"])]
            if data.get("filtered"):
                rows.append((f"{label}, filtered {data['filtered']['filter']}",
                             data["filtered"]["queries"]))  # fmt: skip
            for text, timed in rows:
                cells = [f"{q['p50_ms']} / {q['p95_ms']}" if (q := timed.get(n)) else "-"
                         for n in names]  # fmt: skip
                lines.append(f"| {text} | {_f(events)} | " + " | ".join(cells) + " |")
        for key, command in (("postgres_file", "postgres_queries"),
                             ("sqlite_file", "sqlite_queries")):  # fmt: skip
            if key in queries and not queries[key]:
                lines += ["", f"bench/results/{key[:-5]}.json (the 10M run of bench.{command})"
                          " was absent during this run: nothing to quote."]  # fmt: skip
        for key in queries:
            load = (queries.get(key) or {}).get("load")
            if load:
                lines.append("")
                lines.append(f"{key} load: {json.dumps(load)}")

    notes = results.get("notes")
    if notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    text = "\n".join(lines) + "\n"
    (out / "latest.md").write_text(text)
    return text
