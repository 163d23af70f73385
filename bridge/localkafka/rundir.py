"""Where one broker's files live: everything about it is under a single *run directory*.

::

    <run_dir>/server.properties   rewritten on every start
    <run_dir>/data/                log.dirs; formatted once, kept across restarts
    <run_dir>/logs/broker.out      the JVM's stdout/stderr (quiet: warnings and "started")
    <run_dir>/logs/server.log      Kafka's INFO log
    <run_dir>/broker.json          pid, ports, version: present while the broker runs

One directory per broker is what makes a broker addressable from another process (the
CLI's ``stop`` only needs the directory) and what keeps parallel test sessions apart.
"""

from dataclasses import dataclass
from pathlib import Path

from bridge.localkafka.jars import cache_root
from bridge.localkafka.state import STATE_FILE


def default_run_dir() -> Path:
    """Return ``<cache>/run/kafka``: outside the repository, shared by CLI invocations."""
    return cache_root() / "run" / "kafka"


@dataclass(frozen=True)
class RunDir:
    """The paths inside one run directory; ``path`` should already be absolute."""

    path: Path

    @property
    def server_properties(self) -> Path:
        """The config path; it doubles as the marker that identifies our JVM in /proc."""
        return self.path / "server.properties"

    @property
    def marker(self) -> str:
        """What our broker JVM's command line carries (see ``bridge.localkafka.process``)."""
        return str(self.server_properties)

    @property
    def data(self) -> Path:
        """Kafka's log.dirs, holding the topics and the KRaft metadata log."""
        return self.path / "data"

    @property
    def logs(self) -> Path:
        """Kafka's own log files (``kafka.logs.dir``) and the JVM's console output."""
        return self.path / "logs"

    @property
    def broker_out(self) -> Path:
        """Where the JVM's stdout and stderr go; read it when a start fails."""
        return self.logs / "broker.out"

    @property
    def state_file(self) -> Path:
        """broker.json, present while the broker runs."""
        return self.path / STATE_FILE
