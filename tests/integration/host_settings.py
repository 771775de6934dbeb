"""Fixtures that change a setting of the host (a sysctl, /etc/group) for one test.

Each one restores what it changed at teardown, however the test ended (failed, skipped, timed out:
pytest runs the `finally` in every case), checks that the restore took, and never touches what it
did not create. test_host_settings.py shows it with tests that fail on purpose. conftest.py makes
these fixtures available to every test.
"""

from __future__ import annotations

import grp
import os
import subprocess
from pathlib import Path

import pytest

TCP_MIGRATE_REQ = Path("/proc/sys/net/ipv4/tcp_migrate_req")


@pytest.fixture
def tcp_migrate_req():
    """A setter for the host's net.ipv4.tcp_migrate_req; the value it had is restored at teardown."""
    try:
        previous = TCP_MIGRATE_REQ.read_text().strip()
    except OSError as error:
        pytest.skip(f"net.ipv4.tcp_migrate_req is not available on this kernel: {error}")
    changed = False

    def set_value(value: int) -> None:
        nonlocal changed
        try:
            TCP_MIGRATE_REQ.write_text(f"{value}\n")
        except OSError as error:
            pytest.skip(f"cannot set net.ipv4.tcp_migrate_req (needs root in the host network namespace): {error}")
        changed = True

    try:
        yield set_value
    finally:
        if changed:
            TCP_MIGRATE_REQ.write_text(f"{previous}\n")
            restored = TCP_MIGRATE_REQ.read_text().strip()
            assert restored == previous, f"net.ipv4.tcp_migrate_req is {restored} after the test, was {previous}"


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture
def control_group():
    """A throwaway group (for --control-group) in the host's /etc/group, removed at teardown. Its name
    is one no group has yet, so an existing group is never changed or deleted."""
    name = next((candidate for candidate in (f"arbit{os.getpid() % 100000}x{n}" for n in range(100))
                 if not group_exists(candidate)), None)
    assert name is not None, "no free throwaway group name arbit<pid>x<0-99>"
    subprocess.run(["groupadd", name], check=True, capture_output=True, timeout=30)
    try:
        yield grp.getgrnam(name)
    finally:
        removal = subprocess.run(["groupdel", name], capture_output=True, text=True, timeout=30)
        assert not group_exists(name), f"groupdel {name} left the group in /etc/group: {removal.stderr}"
