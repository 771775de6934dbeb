"""A test that changes a host setting and then fails leaves the setting as it found it.

Each test here runs an inner pytest session (pytester) whose only test changes the setting through
the fixture in host_settings.py and then fails on purpose; the outer test checks the inner one did
fail and the host is back as it was.
"""

from __future__ import annotations

import os

import pytest

from host_settings import TCP_MIGRATE_REQ, group_exists

pytest_plugins = ["pytester"]

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change host settings")


@needs_root
def test_tcp_migrate_req_is_restored_after_a_test_that_fails(pytester):
    if not os.access(TCP_MIGRATE_REQ, os.W_OK):
        pytest.skip(f"{TCP_MIGRATE_REQ} is not writable here (a container's read-only /proc/sys?)")
    before = TCP_MIGRATE_REQ.read_text().strip()
    pytester.makepyfile(test_inner=f"""
        from host_settings import tcp_migrate_req

        def test_changes_the_sysctl_then_fails(tcp_migrate_req):
            tcp_migrate_req({1 - int(before)})
            assert open("{TCP_MIGRATE_REQ}").read().strip() == "{1 - int(before)}"
            assert False, "fails on purpose, after changing the sysctl"
    """)

    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")

    result.assert_outcomes(failed=1)
    assert TCP_MIGRATE_REQ.read_text().strip() == before


@needs_root
def test_throwaway_group_is_removed_after_a_test_that_fails(pytester, tmp_path):
    name_file = tmp_path / "group-name"
    pytester.makepyfile(test_inner=f"""
        import grp
        from host_settings import control_group

        def test_adds_a_group_then_fails(control_group):
            open("{name_file}", "w").write(control_group.gr_name)
            assert grp.getgrnam(control_group.gr_name).gr_gid == control_group.gr_gid
            assert False, "fails on purpose, after adding the group"
    """)

    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")

    result.assert_outcomes(failed=1)
    name = name_file.read_text()
    assert name.startswith("arbit")
    assert not group_exists(name), f"group {name} is still in /etc/group"
