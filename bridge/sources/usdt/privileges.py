"""The Linux capabilities USDT tracing needs, and the check that this process has them.

:data:`USDT_CAPABILITIES` is the single source of truth: the systemd unit, the compose
file and the tests (tests/deploy, tests/realnode/test_least_privilege.py) are checked
against it. Every entry was found necessary by experiment: the bridge run as ``nobody``
against a real ``bitcoind`` run by root, with ``setpriv`` granting exactly the set, then
the set less one capability at a time (kernel 6.18, BCC 0.26). What failed without each
is in its ``without``. Two were found *not* to be needed:

- ``CAP_SYS_RESOURCE``: since Linux 5.11 BPF maps are charged to the memory cgroup, not
  to ``RLIMIT_MEMLOCK``; the set attached its 29 MiB of rings under an 8 MiB limit (and
  root on the test machines runs without it).
- ``CAP_SYS_ADMIN``: BCC first opens each uprobe through the perf ``uprobe`` PMU, which
  kernels since the 2025 revert "perf: Revert to requiring CAP_SYS_ADMIN for uprobes"
  (backported to stable) refuse with EACCES; it then registers the uprobe through
  tracefs, which ``CAP_DAC_OVERRIDE`` opens, and attaches to it with ``CAP_PERFMON``.

Reading ``CapEff`` from ``/proc/self/status`` rather than asking for euid 0 lets the
bridge run as an ordinary user, and tells a user who lacks one capability which one,
instead of BCC's "Operation not permitted" or, without ``CAP_SYS_PTRACE``, a node that
seems not to exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bridge.errors import BpfLoadError

STATUS = Path("/proc/self/status")


@dataclass(frozen=True)
class Capability:
    """One capability: its name (as systemd spells it), its bit, why USDT needs it, and
    what was measured to fail without it."""

    name: str
    bit: int  # linux/capability.h
    why: str
    without: str

    @property
    def short_name(self) -> str:
        """The name as Docker (cap_add) and setpriv spell it, without ``CAP_``."""
        return self.name.removeprefix("CAP_")


USDT_CAPABILITIES: tuple[Capability, ...] = (
    Capability(
        "CAP_BPF",
        39,
        "create the BPF maps and ring buffers",
        "BCC: 'could not open bpf map: tb_ring_coin_selection, error: Operation not "
        "permitted', so the program does not compile",
    ),
    Capability(
        "CAP_PERFMON",
        38,
        "load a tracing program that reads the node's memory, and attach it to uprobes",
        "'bpf: Failed to load program: Operation not permitted' at the first probe",
    ),
    Capability(
        "CAP_DAC_OVERRIDE",
        1,
        "open the node's /proc/<pid>/mem (mode 0600, its owner's) to raise the "
        "tracepoints' semaphores, and register uprobes in tracefs (root's, mode 0600)",
        "BCC: 'Failed to enable USDT probe': /proc/<pid>/mem is EACCES",
    ),
    Capability(
        "CAP_SYS_PTRACE",
        19,
        "read another user's /proc/<pid>/exe (the node's binary and its probe notes) and "
        "pass the ptrace check on /proc/<pid>/mem",
        "readlink /proc/<pid>/exe is EACCES, so the node seems not to exist "
        "('no running process has pid ...')",
    ),
)


def capability_mask(capabilities: tuple[Capability, ...] = USDT_CAPABILITIES) -> int:
    """The capabilities as a bit mask, as /proc/<pid>/status shows them."""
    mask = 0
    for capability in capabilities:
        mask |= 1 << capability.bit
    return mask


def effective_mask(status_text: str | None = None) -> int:
    """This process's effective capabilities (``CapEff`` of /proc/self/status)."""
    text = STATUS.read_text() if status_text is None else status_text
    for line in text.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split(":", 1)[1].strip(), 16)
    raise BpfLoadError("cannot tell this process's capabilities: no CapEff in /proc/self/status")


def missing_capabilities(effective: int) -> list[Capability]:
    """The USDT capabilities absent from ``effective``, in :data:`USDT_CAPABILITIES` order."""
    return [c for c in USDT_CAPABILITIES if not effective >> c.bit & 1]


def check_privileges(status_text: str | None = None) -> None:
    """Fail early, naming each missing capability and why it is needed, instead of
    failing later in BCC (or not finding the node) with a message that names none."""
    missing = missing_capabilities(effective_mask(status_text))
    if not missing:
        return
    needs = "; ".join(f"{c.name} to {c.why}" for c in missing)
    every = " ".join(c.name for c in USDT_CAPABILITIES)
    raise BpfLoadError(
        f"USDT tracing lacks {', '.join(c.name for c in missing)}: it needs {needs}. "
        f"Run as root, or as any user with exactly {every} "
        "(deploy/systemd/tracebridge.service does)"
    )


def setpriv_prefix(
    user: int = 65534, group: int = 65534, capabilities: tuple[Capability, ...] = USDT_CAPABILITIES
) -> list[str]:
    """``setpriv`` arguments that run the rest of a command line as ``user``:``group``
    with exactly ``capabilities`` (effective, ambient and bounding, no new privileges),
    as the compose file's bridge does and the tests do. Run as root (it needs
    CAP_SETUID, CAP_SETGID and CAP_SETPCAP to get there)."""
    caps = ",".join(["-all", *(f"+{c.short_name.lower()}" for c in capabilities)])
    return [
        "setpriv",
        f"--reuid={user}",
        f"--regid={group}",
        "--clear-groups",
        f"--inh-caps={caps}",
        f"--ambient-caps={caps}",
        f"--bounding-set={caps}",
        "--no-new-privs",
        "--",
    ]
