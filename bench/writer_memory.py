"""The write side's memory and cold writes (issue 17 item 6), in one process.

    python bench/writer_memory.py                        # 60 partners x 1,000 events
    python bench/writer_memory.py --history 2000 --appends 6000 --json out.json
    cd /path/to/other/checkout && python /path/to/bench/writer_memory.py --root .

Builds a ledger of ``--partners`` partners with ``--history`` events each (SQLite, in a temporary
directory), closes it, opens it again as a restarted server would, and measures:

* ``writer_cold_write_ms``: one write to each partner through the service and the group-commit
  writer, right after the restart (every partner loaded cold), wall time per write; with
  ``writer_cold_write_cpu_ms`` (process CPU time, all threads), ``writer_cold_write_mb`` (Python
  memory still held after them, tracemalloc, in a second identical run) and
  ``writer_cold_events_read`` (events the loads read from the log, per write);
  (``--drop-snapshots``: the first writes after the restart find no snapshot, as on a ledger
  recorded before them, and take one each);
* ``writer_mb_per_1000_appends``: Python memory (tracemalloc, after a garbage collection) that
  ``--appends`` more appends to those partners leave held, per 1,000 appends, with
  ``writer_rss_mb_per_1000_appends`` (resident set, /proc/self/statm) and the writer's
  ``events_held``.

Only APIs older than the snapshots are used, so that ``--root`` can point at a checkout from
before them, for a before/after on the same machine. Timing is wall time on whatever else the
machine runs: compare back-to-back runs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    """The process's resident set now, in MB."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def traced_mb() -> float:
    gc.collect()
    return tracemalloc.get_traced_memory()[0] / 2**20


def build(settings: Any, partners: int, history: int) -> list[UUID]:
    """``partners`` partners with ``history`` events each, the views caught up."""
    from api.wiring import open_services
    from domain.chained import Stamp
    from domain.partner import Partner
    from domain.values import ContactMade, PartnerRegistered

    services = open_services(settings)
    try:
        stamp = Stamp.now("bench:writer")
        ids = []
        for n in range(partners):
            partner = Partner.register(
                PartnerRegistered(name=f"Long history {n}", kind="organization"), stamp
            )
            for _ in range(history - 1):
                partner.execute(ContactMade(channel="phone", direction="inbound"), stamp)
            services.ledger.save_batch([partner])
            ids.append(partner.id)
        services.keeper.catch_up()
    finally:
        services.close()
    return ids


def _append(services: Any, partner_id: UUID) -> None:
    from api.service import Ask
    from domain.values import ContactMade

    data = ContactMade(channel="email", direction="outbound")
    asyncio.run(services.service.record_event(partner_id, data, Ask(recorded_by="bench:writer")))


def cold_writes(settings: Any, ids: list[UUID], *, traced: bool) -> dict[str, float]:
    """One write to each partner right after opening the ledger again."""
    from api.wiring import open_services

    services = open_services(settings)
    services.writer.start()
    recorder: Any = services.ledger.recorder
    select = recorder.select_events
    read = [0]

    def counted(*args: Any, **kwargs: Any) -> Any:
        found = select(*args, **kwargs)
        read[0] += len(found)
        return found

    recorder.select_events = counted
    try:
        if traced:
            tracemalloc.start()
        before = traced_mb() if traced else 0.0
        wall, cpu = time.perf_counter(), time.process_time()
        for partner_id in ids:
            _append(services, partner_id)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        figures = {
            "writer_cold_write_ms": round(wall * 1000 / len(ids), 2),
            "writer_cold_write_cpu_ms": round(cpu * 1000 / len(ids), 2),
            "writer_cold_events_read": round(read[0] / len(ids), 1),
        }
        if traced:
            figures["writer_cold_write_mb"] = round(traced_mb() - before, 2)
        return figures
    finally:
        if traced:
            tracemalloc.stop()
        services.close()


def memory_per_1000_appends(settings: Any, ids: list[UUID], appends: int) -> dict[str, float]:
    """Memory that ``appends`` appends (round robin over ``ids``, each already written to once)
    leave held, per 1,000."""
    from api.wiring import open_services

    services = open_services(settings)
    services.writer.start()
    tracemalloc.start()  # before the partners are cached: what leaves the cache is counted
    try:
        for partner_id in ids:  # every partner cached first
            _append(services, partner_id)
        before, rss_before = traced_mb(), rss_mb()
        for n in range(appends):
            _append(services, ids[n % len(ids)])
        after, rss_after = traced_mb(), rss_mb()
        return {
            "writer_mb_per_1000_appends": round((after - before) * 1000 / appends, 3),
            "writer_rss_mb_per_1000_appends": round((rss_after - rss_before) * 1000 / appends, 3),
            "writer_events_held": services.writer.events_held,
        }
    finally:
        tracemalloc.stop()
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure")
    parser.add_argument("--partners", type=int, default=60)
    parser.add_argument("--history", type=int, default=1000, help="events per partner")
    parser.add_argument("--appends", type=int, default=3000)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--drop-snapshots",
        action="store_true",
        help="delete the snapshots taken while building: a ledger recorded before them",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(args.root.resolve()))
    from api.settings import Settings

    directory = Path(tempfile.mkdtemp(prefix="pledger-writer-"))
    settings = Settings(db_path=directory / "pledger.db")
    os.environ.setdefault("XDG_DATA_HOME", str(directory / "data"))
    print(f"Building {args.partners} partners x {args.history} events in {directory}", flush=True)
    ids = build(settings, args.partners, args.history)
    if args.drop_snapshots:
        with sqlite3.connect(settings.db_path) as db:
            db.execute("DELETE FROM stored_snapshots")
    figures: dict[str, Any] = {"partners": args.partners, "history": args.history}

    def show(found: dict[str, Any]) -> None:
        figures.update(found)
        for key, value in found.items():
            print(f"{key:<40}{value:>12}", flush=True)

    show(cold_writes(settings, ids, traced=False))
    # The same again, traced: the snapshots (when there are any) are all taken by now.
    traced = cold_writes(settings, ids, traced=True)
    show(
        {
            "writer_cold_write_mb": traced["writer_cold_write_mb"],
            "writer_cold_events_read_second_run": traced["writer_cold_events_read"],
        }
    )
    show(memory_per_1000_appends(settings, ids, args.appends))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
