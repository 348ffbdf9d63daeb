"""Running the hub: one process, or N worker processes sharing the port (SO_REUSEPORT), each with
its own event loop. SIGTERM/SIGINT stop it gracefully: stop accepting, answer requests in flight
(each only after its commit), park deliveries in the journal."""
from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

import uvloop
from aiohttp import web

from smdo.datadir import lock_data_dir
from smdo.journal import journal_store

from router.app import create_app
from router.config import HubConfig
from router.keys import CONNECTIONS
from router.metrics import prepare_multiprocess, worker_exited
from router.tls import server_context

log = logging.getLogger(__name__)


async def _release_claims(config: HubConfig) -> None:
    journal = journal_store(config.storage)
    await journal.open()
    released = await journal.release_claims()
    await journal.close()
    if released:
        log.info("released %d delivery leases left by the previous run", released)


def keep_large_blocks_out_of_the_heap() -> None:
    """glibc raises its mmap threshold each time a large block is freed (up to 32 MB), after which
    body-sized blocks (packets, parsed trees) come from the heap and stay in RSS when freed. A fixed
    threshold keeps them mmapped, so memory goes back to the system as soon as a packet is done.
    The price: the TLS layer (uvloop's as asyncio's) reads into a fresh 256 KiB block each time and
    aiohttp joins what it buffered into blocks of up to ~1 MB, each then an mmap, page faults and a
    munmap. Measured on 2026-12-01 (bench/large_file.py, bench/abuse.py): a part upload costs the hub
    1.5 s of CPU per 300 MB at 256 KiB, 0.9 s at 320 KiB, 0.5 s at 1 MiB (the upload leg at 0.32-0.46
    of the floor, against 0.61-0.70 at 1 MiB); 200 concurrent 28 MB uploads peak at 241-256 MB at
    256 KiB, 346-365 MB at 320 KiB and 315-363 MB at 1 MiB, against the 400 MB goal. The TLS blocks
    that cost the CPU are the ones that fill the heap, so there is no threshold between: this one
    keeps the margin under many uploads, which is the bound an attacker can push on."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 256 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc: its allocator decides
        pass


def url(config: HubConfig, port: int) -> str:
    return f"{'http' if config.http else 'https'}://{config.host}:{port}"


def serve(config: HubConfig, announce: Callable[[str], None] | None = None) -> None:
    config.check()
    if not config.http:
        server_context(config)  # a key TLS cannot use (bign): a one-line error before anything starts
    announce = announce or (lambda line: print(line, flush=True))
    # The journal's leases are released at start, which is only safe when no other hub uses them;
    # nodes sharing PostgreSQL release nothing (a dead node's leases run out) and need no folder.
    lock = None if config.clustered else lock_data_dir(config.storage.folder, "serve.lock", "another hub")
    # The journal's thread holds SQLite's write lock while it runs; with the default 5 ms GIL
    # switch interval it can wait that long for the event loop thread, and so can every writer.
    sys.setswitchinterval(0.0005)
    keep_large_blocks_out_of_the_heap()
    try:
        if not config.clustered:
            asyncio.run(_release_claims(config))
        if config.workers == 1:
            _run_loop(config, _worker(config, announce))
            return
        # Every worker writes its metrics to files here; any worker's scrape sums them.
        prepare_multiprocess(config.data / "metrics")
        # Hold the port (bound, not listening, so it takes no connections) to learn it when 0 was asked.
        holder = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((config.host, config.port))
        worker_config = replace(config, port=holder.getsockname()[1])
        ctx = multiprocessing.get_context("fork")
        ready = [ctx.Event() for _ in range(config.workers)]
        workers = [ctx.Process(target=_worker_process, args=(worker_config, i, ready[i]), daemon=False)
                   for i in range(config.workers)]
        for w in workers:
            w.start()
        for i, event in enumerate(ready):  # announce only once every worker listens
            while not event.wait(0.5):
                if not workers[i].is_alive():
                    raise RuntimeError(f"worker {i} exited with code {workers[i].exitcode} before listening")

        def forward(signum: int, _frame: object) -> None:
            for w in workers:
                if w.pid:
                    os.kill(w.pid, signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        announce(f"smdo-hub listening on {url(config, worker_config.port)} ({config.workers} workers)")
        for w in workers:
            w.join()
            worker_exited(w.pid)
        holder.close()
    finally:
        if lock is not None:
            lock.close()


def _worker_process(config: HubConfig, index: int, ready: Any) -> None:
    def announce(line: str) -> None:
        log.info("worker %d: %s", index, line)
        ready.set()

    _run_loop(config, _worker(config, announce))


def _run_loop(config: HubConfig, main: Coroutine[Any, Any, None]) -> None:
    """A worker's event loop: uvloop (`event_loop`, the default) or the standard library's."""
    factory = uvloop.new_event_loop if config.event_loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


async def _worker(config: HubConfig, announce: Callable[[str], None]) -> None:
    app = create_app(config, release_claims=False)
    access_log = logging.getLogger("aiohttp.access") if config.access_log else None
    runner = web.AppRunner(app, handle_signals=False, access_log=access_log, shutdown_timeout=10.0,
                           access_log_format='%a "%r" %s %b %Tfs "%{User-Agent}i"',
                           auto_decompress=False)  # router/body.py refuses encoded bodies, unread
    await runner.setup()
    # Our own listening socket rather than a TCPSite: each connection's protocol is aiohttp's
    # wrapped in router.connections' guard (head and idle timeouts, the connection cap).
    connections = app[CONNECTIONS]
    try:  # a port in use or a bad TLS key: stop what setup started (the journal's thread), then report
        server = await asyncio.get_running_loop().create_server(
            connections.protocol_factory(runner.server), config.host, config.port,
            ssl=None if config.http else server_context(config), reuse_port=config.workers > 1, backlog=1024,
            ssl_handshake_timeout=config.head_timeout,
        )
    except BaseException:
        await runner.cleanup()
        raise
    port = server.sockets[0].getsockname()[1]
    # What exists now (modules, schemas, keys, the app) lives as long as the process: keep it out
    # of the cyclic collector's scans, which otherwise grow into pauses under load.
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    announce(f"smdo-hub listening on {url(config, port)}")
    if config.clustered and config.parts_dir is None:  # said once up, so a refusal to start stays one line
        log.warning("files beside the envelope are kept in %s, this node's own folder: nodes sharing a "
                    "database must also share parts_dir, or a part uploaded to one is unknown to the others",
                    config.parts_path)
    await stop.wait()
    log.info("stopping: no new connections, finishing requests in flight, parking deliveries")
    server.close()
    await runner.cleanup()
    print("smdo-hub stopped", file=sys.stderr, flush=True)
