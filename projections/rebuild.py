"""Rebuilding the views: the whole log folded again from position 0.

A rebuild reads every event, so it reads the log's table with SQL of its own
(``projections.logtable``) rather than through the library's ``select_notifications``, which
makes a ``Notification`` and a ``UUID`` for every row: that was a third of the rebuild's time
when it read through it. Catching up, a page of new events at a time, still polls the library's
call (``projections.runner``); both decode a stored row with the same function into the same
entry.

What the views hold splits along the log's two orders:

* a stream's rows (a partner's snapshot and commitments, a coalition) depend on that stream
  alone, so the streams are read along the primary key (stream id, version), and each is folded
  as soon as it is complete, by the definition of a snapshot (``rows.fold_stream``: the fold of
  its counting entries), and its rows handed on: nothing is held but the stream in hand;
* the ledger digest is a chain over every event's hash in position order: one pass along
  positions.

On a large log both run in worker processes (``python -m projections.rebuild``): the range of
stream ids is cut in equal parts, one fold per part, beside one digest pass, while the calling
process writes the rows they send into the views, all in the one transaction of
``LedgerView.rebuild``. Workers only read, over connections of their own, and send their rows
as JSON lines on stdout. A small log (under PARALLEL_FROM events) is folded in the calling
process, the same way: there, starting three processes (a tenth of a second) would cost more
than they save.
"""

from __future__ import annotations

import gc
import os
import queue
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

import orjson

from domain.dates import ledger_zone, zone_name
from domain.personal import Vault
from projections.folds import Entry
from projections.logtable import LogTable, OpenLog
from projections.rows import (
    DigestChain,
    Totals,
    coalition_row,
    commitment_rows,
    count_commitments,
    fold_stream,
    partner_row,
)

__all__ = ["FOLD_WORKERS", "PARALLEL_FROM", "LogFold", "ViewRows"]

PAGE_SIZE = 5000
PARALLEL_FROM = 20_000  # events: below this a rebuild folds in the calling process
FOLD_WORKERS = 2  # processes folding streams (beside one computing the digest)


@dataclass
class ViewRows:
    """The rows of streams folded to their end, how many events were read for them, and what
    their commitments add to ``commitment_totals``."""

    events: int
    partners: list[Sequence[Any]] = field(default_factory=list)
    commitments: list[Sequence[Any]] = field(default_factory=list)
    coalitions: list[Sequence[Any]] = field(default_factory=list)
    totals: Totals = field(default_factory=Counter)
    heads: list[Sequence[Any]] = field(default_factory=list)  # stream_heads rows
    tree: Sequence[Sequence[Any]] = field(default_factory=list)  # merkle_nodes rows (digest pass)


def fold_streams(
    log: OpenLog, lower: str, upper: str | None, upto: int, zone: tzinfo = UTC
) -> Iterator[ViewRows]:
    """The rows of every stream whose id is in [lower, upper) (no upper: to the last), as
    recorded up to position ``upto``, days counted in ``zone``; a batch for every page of
    events read."""
    stream: list[Entry] = []
    stream_id = None
    for page in log.stream_pages(lower, upper, upto, PAGE_SIZE):
        rows = ViewRows(len(page))
        for entry in page:
            if entry.stream_id != stream_id:
                if stream:
                    _add_stream(rows, stream, upto, zone)
                stream = []
                stream_id = entry.stream_id
            stream.append(entry)
        count_commitments(rows.totals, rows.commitments)
        yield rows
    if stream:
        rows = ViewRows(0)
        _add_stream(rows, stream, upto, zone)
        count_commitments(rows.totals, rows.commitments)
        yield rows


def _add_stream(rows: ViewRows, stream: list[Entry], upto: int, zone: tzinfo) -> None:
    stream_id = stream[0].stream_id
    recorded = [e for e in stream if e.position <= upto]
    if recorded:
        last = recorded[-1]
        rows.heads.append((stream_id, last.version, last.position, last.hash))
    if stream[0].stream_type == "partner":
        folded = fold_stream(stream_id, stream, upto, zone)
        rows.partners.append(partner_row(stream_id, folded))
        rows.commitments.extend(commitment_rows(stream_id, folded.snap))
    elif (row := coalition_row(stream)) is not None:
        rows.coalitions.append(row)


def digest_log(log: OpenLog, upto: int, chain: DigestChain) -> Iterator[ViewRows]:
    """Extend ``chain`` (a new one) with every event up to position ``upto``: the ledger
    digest, and the Merkle tree's nodes, handed on a page at a time (rows of no events)."""
    for page in log.hash_pages(upto, PAGE_SIZE):
        chain.extend(page)
        yield ViewRows(0, tree=chain.take_tree())


class LogFold:
    """The log up to position ``upto`` folded into the views' rows.

    Iterate for the rows, batch by batch as they are ready; afterwards ``chain`` holds the
    ledger digest. ``workers``: how many processes fold streams (0: fold here); by default
    FOLD_WORKERS from PARALLEL_FROM events on, on a machine with more than one core. Entered
    as a context manager, it starts its worker processes at once (they start while the caller
    clears the views) and stops any still running when it is left.
    """

    def __init__(
        self, table: LogTable, upto: int, *, workers: int | None = None, zone: tzinfo = UTC
    ) -> None:
        if workers is None:
            several_cores = (os.cpu_count() or 1) > 1
            workers = FOLD_WORKERS if upto >= PARALLEL_FROM and several_cores else 0
        self.table = table
        self.upto = upto
        self.workers = workers
        self.zone = zone
        self.chain = DigestChain()
        self._started: _Workers | None = None

    def __enter__(self) -> LogFold:
        if self.workers and self._started is None:
            self._started = _Workers(self._jobs())
        return self

    def __exit__(self, *_: object) -> None:
        started, self._started = self._started, None
        if started is not None:
            started.close()

    def __iter__(self) -> Iterator[ViewRows]:
        if not self.workers:
            with OpenLog(self.table) as log:
                yield from fold_streams(log, self.table.lowest_key(), None, self.upto, self.zone)
                self.chain = DigestChain()
                yield from digest_log(log, self.upto, self.chain)
        elif self._started is not None:
            yield from self._receive(self._started)
        else:
            with self:
                assert self._started is not None
                yield from self._receive(self._started)

    def _jobs(self) -> list[dict[str, Any]]:
        """One job a range of stream ids, and one for the digest (plain JSON)."""
        vault = self.table.vault
        table = {
            "postgres": self.table.postgres,
            "name": self.table.name,
            "topics": dict(self.table.topics),
            "connect_args": dict(self.table.connect_args),
            "vault": None if vault is None else [vault.postgres, vault.prefix, vault.schema],
        }
        bounds = [self.table.split_key(part, self.workers) for part in range(self.workers)]
        bounds[0] = self.table.lowest_key()
        jobs: list[dict[str, Any]] = [
            {
                "table": table,
                "upto": self.upto,
                "streams": [lower, upper],
                "zone": zone_name(self.zone),
            }
            for lower, upper in zip(bounds, [*bounds[1:], None], strict=True)
        ]
        jobs.append({"table": table, "upto": self.upto, "streams": None})
        return jobs

    def _receive(self, workers: _Workers) -> Iterator[ViewRows]:
        for message in workers.messages():
            if "chain" in message:
                digest, events, position, checkpoints = message["chain"]
                self.chain = DigestChain(digest, events, position, checkpoints)
                continue
            if "tree" in message:
                # As they arrive (lists): both stores write any sequence as a row.
                yield ViewRows(0, tree=message["tree"])
                continue
            events, partners, commitments, coalitions, totals, heads = message["rows"]
            yield ViewRows(
                events,
                partners,
                commitments,
                coalitions,
                Counter({tuple(key): count for *key, count in totals}),
                heads,
            )


# ---- worker processes ---------------------------------------------------------------------

_ROOT = Path(__file__).resolve().parent.parent  # where this copy of the package is imported from


class _Workers:
    """Worker processes running ``python -m projections.rebuild``, one per job; a thread per
    worker reads its messages (JSON lines) into one queue, in the order they arrive."""

    def __init__(self, jobs: list[dict[str, Any]]) -> None:
        path = [str(_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
        self._arrived: queue.SimpleQueue[tuple[int, bytes | None]] = queue.SimpleQueue()
        self._processes: list[subprocess.Popen[bytes]] = []
        self._readers: list[threading.Thread] = []
        try:
            for job in jobs:
                process = subprocess.Popen(
                    [sys.executable, "-m", "projections.rebuild"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=env,
                )
                self._processes.append(process)
                assert process.stdin is not None
                _write_all(process.stdin.fileno(), orjson.dumps(job))
                process.stdin.close()
        except BaseException:
            self.close()
            raise
        for index, process in enumerate(self._processes):
            reader = threading.Thread(
                target=self._read, args=(index, process), name=f"rebuild-worker-{index}"
            )
            reader.start()
            self._readers.append(reader)

    def _read(self, index: int, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._arrived.put((index, line))
        self._arrived.put((index, None))

    def messages(self) -> Iterator[dict[str, Any]]:
        """Every worker's messages, until each has ended; raises if one failed."""
        running = len(self._processes)
        while running:
            index, line = self._arrived.get()
            if line is not None:
                yield orjson.loads(line)
                continue
            running -= 1
            status = self._processes[index].wait()
            if status != 0:
                msg = f"rebuild worker {index} exited with status {status} (its error is above)"
                raise ChildProcessError(msg)

    def close(self) -> None:
        """Stop the workers still running; wait for them, then for their readers."""
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
            process.wait()
        for reader in self._readers:
            reader.join()  # a dead worker's pipe ends, and with it its reader
        for process in self._processes:
            if process.stdout is not None:
                process.stdout.close()


def _run(job: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One worker's job, as the messages it sends."""
    spec = dict(job["table"])
    vault = spec.pop("vault", None)
    table = LogTable(**spec, vault=Vault(*vault) if vault else None)
    with OpenLog(table) as log:
        if job["streams"] is None:
            chain = DigestChain()
            for rows in digest_log(log, job["upto"], chain):
                yield {"tree": rows.tree}
            yield {"chain": [chain.digest, chain.events, chain.position, chain.checkpoints]}
            return
        lower, upper = job["streams"]
        zone = ledger_zone(job["zone"])
        for rows in fold_streams(log, lower, upper, job["upto"], zone):
            totals = [[*key, count] for key, count in rows.totals.items()]
            yield {
                "rows": [
                    rows.events,
                    rows.partners,
                    rows.commitments,
                    rows.coalitions,
                    totals,
                    rows.heads,
                ]
            }


def _write_all(fd: int, data: bytes) -> None:
    # os.write until all is written, not a buffered file: stopped and continued in the middle
    # of a write to a full pipe (Ctrl-Z, then fg), Python 3.11's BufferedWriter has been seen to
    # drop what the interrupted write(2) did not take, without an error.
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def main() -> None:
    """A worker: its job is a JSON object on stdin; its messages go to stdout, a line each."""
    # A short-lived process whose objects form no reference cycles: collecting is wasted time.
    gc.disable()
    # Ctrl-C reaches the whole process group: the rebuild stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    job = orjson.loads(sys.stdin.buffer.read())
    profile_to = os.environ.get("PLEDGER_REBUILD_PROFILE")  # for profiling the rebuild only
    if not profile_to:
        _send(job)
        return
    import cProfile
    import time

    # "cpu": say the worker's CPU time on stderr; a directory: also write a cProfile there.
    kind = "digest" if job["streams"] is None else f"fold-{job['streams'][0] or 0}"
    started = time.process_time()
    if profile_to == "cpu":
        _send(job)
    else:
        profiler = cProfile.Profile(time.process_time)
        profiler.runcall(_send, job)
        profiler.dump_stats(Path(profile_to) / f"worker-{kind}-{os.getpid()}.prof")
    seconds = time.process_time() - started
    print(f"rebuild worker {kind}: {seconds:.3f} s of CPU", file=sys.stderr)


def _send(job: dict[str, Any]) -> None:
    for message in _run(job):
        _write_all(sys.stdout.fileno(), orjson.dumps(message) + b"\n")


if __name__ == "__main__":
    main()
