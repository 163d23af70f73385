"""Where the local services' downloads and run directories live, and a lock for filling it."""

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

CACHE_ENV_VAR = "TRACEBRIDGE_CACHE_DIR"


def cache_root() -> Path:
    """Return the cache root, so that every helper (jars, runtimes, run dirs) agrees on it.

    ``TRACEBRIDGE_CACHE_DIR`` wins so CI can keep the cache on a persistent volume.
    """
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tracebridge"


def default_run_dir(name: str) -> Path:
    """Return ``<cache>/run/<name>``: outside the repository, shared by CLI invocations."""
    return cache_root() / "run" / name


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block.

    A test session and a CLI start (or two xdist workers) may race to fill the same cache
    directory; whoever comes second waits, then finds the work done.
    """
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
