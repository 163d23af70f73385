"""The baseline the bridge is compared with: a consumer in the style of Bitcoin Core's
``contrib/tracing`` scripts and ``interface_usdt_net.py`` functional test.

That style is what most people who trace a node today run, so it is the fair "before"
for the RFC #35142 ping benchmark: BCC's ``USDT(pid=...)`` (which raises the
semaphores), a C program that copies each message event into a stack struct and
``perf_submit``\\s it to a ``BPF_PERF_OUTPUT`` map, and a Python callback per event
(``open_perf_buffer`` with a lost-samples callback, ``perf_buffer_poll`` in a loop)
that decodes the struct with ``table.event(data)``. BCC's perf buffers wake the reader
on every event (``wakeup_events = 1``): that wakeup, paid by the node's thread at each
probe hit, is the cost the bridge's ring buffers avoid (performance-limits.md).

The struct is the functional test's: peer id, address (68), connection type (20),
message type (20), size, and the first 150 payload bytes. One thing is added that the
scripts lack: a BPF counter of probe hits, so this consumer's books can be checked
(hits == events received + samples lost) the way the bridge's are.

It runs as its own process (``python -m bridge.bench.perfbuf_baseline --pid N``) so its
CPU is its own: it prints one JSON line when attached and one with its counts when the
node exits or it receives SIGINT/SIGTERM. :class:`PerfbufConsumer` drives it.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from string import Template
from types import FrameType
from typing import IO, Any

from bridge.bench.ping import process_cpu_s
from bridge.sources.usdt.process import process_by_pid

# The functional test's sizes (test/functional/interface_usdt_net.py): the longest
# address is a Tor v3 one with its port, a message type is at most 12 bytes on the
# wire, and 150 payload bytes are enough to see a version message's fields.
BPF_PROGRAM = r"""
#include <uapi/linux/ptrace.h>

#ifndef MIN  /* the kernel headers' minmax.h usually has it */
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#define MAX_PEER_ADDR_LENGTH 68
#define MAX_PEER_CONN_TYPE_LENGTH 20
#define MAX_MSG_TYPE_LENGTH 20
#define MAX_MSG_DATA_LENGTH 150

struct p2p_message
{
    u64 peer_id;
    char peer_addr[MAX_PEER_ADDR_LENGTH];
    char peer_conn_type[MAX_PEER_CONN_TYPE_LENGTH];
    char msg_type[MAX_MSG_TYPE_LENGTH];
    u64 msg_size;
    u8 msg[MAX_MSG_DATA_LENGTH];
};

BPF_PERF_OUTPUT(inbound_messages);
BPF_PERF_OUTPUT(outbound_messages);
BPF_ARRAY(hits, u64, 2);  // 0: inbound, 1: outbound

"""
# One handler per probe, as the functional test writes them: BCC rewrites each
# bpf_usdt_readarg() for the probe whose handler the call sits in, so they cannot share
# a helper function; the text is the same but for the direction.
HANDLER = r"""
int trace_${direction}_message(struct pt_regs *ctx)
{
    struct p2p_message msg = {};
    void *addr = NULL, *conn_type = NULL, *msg_type = NULL, *payload = NULL;
    hits.atomic_increment(${index});
    bpf_usdt_readarg(1, ctx, &msg.peer_id);
    bpf_usdt_readarg(2, ctx, &addr);
    bpf_probe_read_user_str(&msg.peer_addr, sizeof(msg.peer_addr), addr);
    bpf_usdt_readarg(3, ctx, &conn_type);
    bpf_probe_read_user_str(&msg.peer_conn_type, sizeof(msg.peer_conn_type), conn_type);
    bpf_usdt_readarg(4, ctx, &msg_type);
    bpf_probe_read_user_str(&msg.msg_type, sizeof(msg.msg_type), msg_type);
    bpf_usdt_readarg(5, ctx, &msg.msg_size);
    bpf_usdt_readarg(6, ctx, &payload);
    bpf_probe_read_user(&msg.msg, MIN(msg.msg_size, MAX_MSG_DATA_LENGTH), payload);
    ${direction}_messages.perf_submit(ctx, &msg, sizeof(msg));
    return 0;
}
"""
DIRECTIONS = ("inbound", "outbound")  # the hits index of each is its position
# The flags Core's functional tests compile with (test_framework/util.py bpf_cflags):
# BCC's helpers trip newer clangs' implicit-declaration error, and bitcoin#32322.
CFLAGS = ["-Wno-error=implicit-function-declaration", "-Wno-duplicate-decl-specifier"]
# BCC's default: 8 pages per CPU (32 KiB, ~110 events of this struct per CPU).
PAGE_COUNT = 8
POLL_TIMEOUT_MS = 100


@dataclass(frozen=True)
class BaselineCounts:
    """What the baseline consumer saw of one node run."""

    hits: int  # probe hits (the BPF counter): what fired
    received: int  # events delivered to the Python callback
    lost: int  # samples the perf buffer reported dropped (the lost callback)
    by_type: dict[str, int]  # "inbound ping", "outbound pong", ...
    cpu_total_s: float  # the consumer process's CPU when done, compiling included

    @property
    def unreported(self) -> int:
        """Hits neither received nor reported lost. The kernel reports perf-buffer
        losses in a record written at its next successful output, so losses after the
        last one that fit (a flood that ends while the buffer is full) never reach the
        lost callback: only the hit counter, which the contrib scripts lack, shows them."""
        return self.hits - self.received - self.lost


def consume(pid: int, stop: list[bool]) -> BaselineCounts:
    """Attach to ``pid``, print a "ready" line, count until the node exits or ``stop[0]``
    is set, then drain what is left and return the counts."""
    from bcc import BPF, USDT

    usdt = USDT(pid=pid)  # kept referenced to the end: dropping it lowers the semaphores
    for direction in DIRECTIONS:
        usdt.enable_probe(probe=f"net:{direction}_message", fn_name=f"trace_{direction}_message")
    handlers = [
        Template(HANDLER).substitute(direction=direction, index=index)
        for index, direction in enumerate(DIRECTIONS)
    ]
    program = BPF_PROGRAM + "".join(handlers)
    bpf = BPF(text=program, usdt_contexts=[usdt], debug=0, cflags=CFLAGS)
    by_type: Counter[str] = Counter()
    lost = [0]

    def handler(direction: str, table: str) -> Any:
        def handle_event(_cpu: int, data: Any, _size: int) -> None:
            event = bpf[table].event(data)
            by_type[f"{direction} {event.msg_type.decode(errors='replace')}"] += 1

        return handle_event

    def handle_lost(count: int) -> None:
        lost[0] += count

    for direction in DIRECTIONS:
        table = f"{direction}_messages"
        bpf[table].open_perf_buffer(
            handler(direction, table), page_cnt=PAGE_COUNT, lost_cb=handle_lost
        )
    node = process_by_pid(pid)
    print(json.dumps({"ready": True}), flush=True)
    while not stop[0] and node is not None and node.alive():
        bpf.perf_buffer_poll(timeout=POLL_TIMEOUT_MS)
    # The node is gone (or we were told to stop): what it fired is in the buffers.
    # Poll until a pass brings nothing new.
    seen = -1
    while seen != (seen := sum(by_type.values()) + lost[0]):
        bpf.perf_buffer_poll(timeout=0)
    hits = sum(value.value for value in bpf["hits"].values())
    counts = BaselineCounts(
        hits=hits,
        received=seen - lost[0],
        lost=lost[0],
        by_type=dict(by_type),
        cpu_total_s=time.process_time(),
    )
    del usdt
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pid", type=int, required=True, help="The node to trace.")
    args = parser.parse_args(argv)
    stop = [False]

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop[0] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    counts = consume(args.pid, stop)
    print(json.dumps(counts.__dict__), flush=True)


class PerfbufConsumer:
    """The baseline consumer as a child process, attached to one node run."""

    def __init__(self, pid: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bridge.bench.perfbuf_baseline", "--pid", str(pid)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self._stdout: IO[str] = self.process.stdout
        line = self._stdout.readline()  # BCC compiles for a few seconds first
        if not line or not json.loads(line).get("ready"):
            self.process.kill()
            raise RuntimeError(f"the perf-buffer baseline failed to attach to pid {pid}")

    def cpu_s(self) -> float:
        """Its CPU so far (utime + stime): read at the start of a flood, subtracted from
        :attr:`BaselineCounts.cpu_total_s` at the end."""
        return process_cpu_s(self.process.pid)

    def finish(self, timeout_s: float = 60.0) -> BaselineCounts:
        """Wait for it to notice the node's exit (SIGINT after ``timeout_s``), and return
        its counts."""
        try:
            out, _ = self.process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGINT)
            out, _ = self.process.communicate(timeout=30)
        lines = out.strip().splitlines()
        if self.process.returncode != 0 or not lines:
            raise RuntimeError(f"the perf-buffer baseline exited with {self.process.returncode}")
        return BaselineCounts(**json.loads(lines[-1]))


if __name__ == "__main__":
    main()
