"""The command group ``service_group`` builds, on the fake service, through click's runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.localservice.cli import FetchCommand, ServiceCommands, service_group
from tests.unit.localservice.fake import FakeError, FakeService


def _fetch(version: str) -> Path:
    if version == "bad":
        raise FakeError("no such version")
    return Path("/cache/fake") / version


GROUP = service_group(
    ServiceCommands(
        help="Run a fake service.",
        service=FakeService,
        default_port=0,
        address_name="address",
        status_key="at",
        fetch=FetchCommand(
            name="fetch",
            help="Fetch nothing.",
            version_option="fake-version",
            version_help="The version.",
            default_version="1.0",
            fetch=_fetch,
        ),
        error=FakeError,
    )
)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


# `start` leaves the service running by design, and as a command its process ends at once;
# run in-process, its Popen is collected while the child lives, which Python warns about.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_start_status_stop(runner: CliRunner, tmp_path: Path) -> None:
    run_dir = ["--run-dir", str(tmp_path)]
    started = runner.invoke(GROUP, ["start", *run_dir])
    try:
        assert started.exit_code == 0, started.output
        address = started.stdout.strip().splitlines()[-1]
        assert address.startswith("127.0.0.1:")

        status = runner.invoke(GROUP, ["status", *run_dir])
        assert status.exit_code == 0
        assert f"at={address}" in status.stdout
    finally:
        stopped = runner.invoke(GROUP, ["stop", *run_dir])
    assert stopped.stdout.strip() == "stopped"

    again = runner.invoke(GROUP, ["stop", *run_dir])
    assert f"no fake service running in {tmp_path}" in again.stdout
    after = runner.invoke(GROUP, ["status", *run_dir])
    assert after.exit_code == 1
    assert "not running" in after.stdout


def test_fetch_prints_the_directory_or_a_one_line_error(runner: CliRunner) -> None:
    fetched = runner.invoke(GROUP, ["fetch", "--fake-version", "2.0"])
    assert fetched.exit_code == 0
    assert fetched.stdout.strip() == "/cache/fake/2.0"

    failed = runner.invoke(GROUP, ["fetch", "--fake-version", "bad"])
    assert failed.exit_code == 1
    assert "Error: no such version" in failed.output


def test_help_names_the_service(runner: CliRunner) -> None:
    result = runner.invoke(GROUP, ["start", "--help"])
    assert "Start the fake service" in result.stdout
    assert "<cache>/run/fake" in result.stdout
