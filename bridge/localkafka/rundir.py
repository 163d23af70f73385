"""Where one broker's files live: everything about it is under a single *run directory*.

::

    <run_dir>/server.properties   rewritten on every start
    <run_dir>/data/                log.dirs; formatted once, kept across restarts
    <run_dir>/logs/broker.out      the JVM's stdout/stderr (quiet: warnings and "started")
    <run_dir>/logs/server.log      Kafka's INFO log
    <run_dir>/broker.json          pid, ports, version: present while the broker runs

One directory per broker is what makes a broker addressable from another process (the
CLI's ``stop`` only needs the directory) and what keeps parallel test sessions apart.
``LocalBroker`` itself knows the output and state files; these are Kafka's own.
"""

from dataclasses import dataclass
from pathlib import Path

RUN_DIR_NAME = "kafka"

SERVER_PROPERTIES = "server.properties"


@dataclass(frozen=True)
class RunDir:
    """The Kafka paths inside one run directory; ``path`` should already be absolute."""

    path: Path

    @property
    def server_properties(self) -> Path:
        """The config path; it doubles as the marker that identifies our JVM in /proc."""
        return self.path / SERVER_PROPERTIES

    @property
    def data(self) -> Path:
        """Kafka's log.dirs, holding the topics and the KRaft metadata log."""
        return self.path / "data"

    @property
    def logs(self) -> Path:
        """Kafka's own log files (``kafka.logs.dir``) and the JVM's console output."""
        return self.path / "logs"
