"""--user/--group: the arbiter runs as root, its workers as the user, completely.

`arbiter exec-worker` drops privileges before the worker's interpreter starts: the user's primary
and supplementary groups (initgroups), its uid, HOME/USER/LOGNAME. A unix: listener belongs to the
user and group, and after a log rotation the arbiter hands the new root-owned 0640 log file to the
workers over their channels, since they may not open it themselves.

The account is made for these tests with useradd/groupadd and removed afterwards; the account files
are checked to be back as they were (their '-' backups restored byte for byte).
"""

import grp
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from conftest import APPS_DIR, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="--user/--group need the arbiter to start as root")

ACCOUNT_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")
BACKUP_FILES = tuple(f"{name}-" for name in ACCOUNT_FILES) + ("/etc/subuid", "/etc/subgid")


@dataclass(frozen=True)
class Account:
    user: str
    uid: int
    primary: str
    gid: int
    extra: str
    extra_gid: int
    home: Path


def _snapshot(paths) -> dict[str, Optional[bytes]]:
    return {path: Path(path).read_bytes() if os.path.exists(path) else None for path in paths}


def _tool(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr}"


@pytest.fixture(scope="module")
def account():
    accounts_before = _snapshot(ACCOUNT_FILES)
    backups_before = _snapshot(BACKUP_FILES)
    suffix = os.getpid() % 100000
    user, primary, extra = f"arbu{suffix}", f"arbp{suffix}", f"arbx{suffix}"
    home = Path(tempfile.mkdtemp(prefix="arbiter-home-", dir="/tmp"))
    created: list[list[str]] = []
    try:
        # --system: no subordinate ids, no mail spool; --no-log-init: no lastlog/faillog records.
        for group in (primary, extra):
            _tool("groupadd", "--system", group)
            created.insert(0, ["groupdel", group])
        _tool("useradd", "--system", "--no-create-home", "--no-log-init", "--home-dir", str(home), "--gid", primary,
              "--groups", extra, "--shell", "/usr/sbin/nologin", user)
        created.insert(0, ["userdel", user])
        entry = pwd.getpwnam(user)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        yield Account(user, entry.pw_uid, primary, grp.getgrnam(primary).gr_gid, extra, grp.getgrnam(extra).gr_gid,
                      home)
    finally:
        for argv in created:
            subprocess.run(argv, capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)
        for path, data in backups_before.items():  # written by useradd & co.; nothing reads them
            if data is None:
                Path(path).unlink(missing_ok=True)
            elif Path(path).read_bytes() != data:
                Path(path).write_bytes(data)
        accounts_after = _snapshot(ACCOUNT_FILES)
        for path, data in accounts_before.items():
            text = (accounts_after[path] or b"").decode()
            assert all(f"{name}:" not in text for name in (user, primary, extra)), f"{path} still names our account"
            # Equal byte for byte, unless another process changed the file meanwhile (then only ours is checked).
            if accounts_after[path] != data:
                print(f"note: {path} changed by another process during the tests")


def worker_status(pid: int) -> dict[str, list[str]]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return fields


def test_worker_runs_as_the_user_with_its_primary_and_supplementary_groups(arbiter, account):
    arbiter.run(workers=1, extra=["--user", account.user])
    (pid,) = arbiter.wait_ready(1)

    status = worker_status(pid)
    assert status["Uid"] == [str(account.uid)] * 4
    assert status["Gid"] == [str(account.gid)] * 4
    assert str(account.extra_gid) in status["Groups"], status["Groups"]
    assert "0" not in status["Groups"], "root's groups were kept"


def test_group_flag_sets_the_group_and_keeps_the_users_supplementary_groups(arbiter, account):
    arbiter.run(workers=1, extra=["--user", account.user, "--group", account.extra])
    (pid,) = arbiter.wait_ready(1)

    status = worker_status(pid)
    assert status["Uid"] == [str(account.uid)] * 4
    assert status["Gid"] == [str(account.extra_gid)] * 4
    assert str(account.extra_gid) in status["Groups"]


def test_worker_environment_has_the_users_home_user_and_logname(arbiter, account):
    arbiter.run(workers=1, extra=["--user", account.user])
    arbiter.wait_ready(1)

    environment = arbiter.get("/env").json()
    assert environment["HOME"] == str(account.home)
    assert environment["USER"] == account.user
    assert environment["LOGNAME"] == account.user
    assert environment["ARBITER_UID"] == str(account.uid)


def test_unix_listener_belongs_to_the_user_and_its_group(arbiter, account, workdir):
    path = workdir / "app.sock"
    arbiter.run(workers=1, bind=f"unix:{path}", extra=["--user", account.user])
    arbiter.wait_ready(1)

    st = path.stat()
    assert (st.st_uid, st.st_gid) == (account.uid, account.gid)
    assert stat.S_IMODE(st.st_mode) == 0o660


def test_unix_listener_takes_the_group_flag(arbiter, account, workdir):
    path = workdir / "app.sock"
    arbiter.run(workers=1, bind=f"unix:{path}", extra=["--user", account.user, "--group", account.extra])
    arbiter.wait_ready(1)

    st = path.stat()
    assert (st.st_uid, st.st_gid) == (account.uid, account.extra_gid)


def test_usr1_hands_a_root_owned_0640_log_file_to_workers_running_as_the_user(arbiter, account, workdir):
    log_file = workdir / "app.log"  # workdir is root's 0700: the workers could not even reach it
    rotated = workdir / "app.log.1"
    arbiter.run(workers=2, extra=["--user", account.user, "--log-file", str(log_file)])
    pids = arbiter.wait_ready(2)
    log_file.rename(rotated)
    arbiter.signal(signal.SIGUSR1)
    wait_until(lambda: log_file.exists() and "reopened" in log_file.read_text(), 10, "the arbiter to reopen the log")
    st = log_file.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o640)

    def every_worker_logged_to_the_new_file() -> bool:
        for _ in range(20):
            arbiter.try_get_json()
        text = log_file.read_text()
        return all(f"pid {pid}] INFO:" in text and f'"GET / HTTP/1.1" 200' in text for pid in pids)
    wait_until(every_worker_logged_to_the_new_file, 20, "access lines of both workers in the new file")
    assert "cannot reopen" not in log_file.read_text() + rotated.read_text()


def test_chdir_the_user_cannot_enter_is_refused_with_the_reason(arbiter, account, workdir):
    private = workdir / "private-app"  # under root's 0700 workdir
    private.mkdir()
    shutil.copy(APPS_DIR / "hello.py", private / "hello.py")
    arbiter.run(workers=1, extra=["--user", account.user, "--chdir", str(private)])

    code = arbiter.wait_exit(60)

    assert f"the working directory {private} is not usable by uid {account.uid}" in arbiter.output()
    assert code != 0


def test_the_worker_refuses_to_run_as_root_when_told_to_be_the_user(workdir, account):
    # A spawner that skipped `arbiter exec-worker` must not get the app running as root.
    env = {"PATH": os.environ["PATH"], "ARBITER_UID": str(account.uid), "PYTHONPATH": str(APPS_DIR.parents[1] / "worker-shim")}
    from conftest import TEST_PYTHON
    result = subprocess.run([str(TEST_PYTHON), "-m", "arbiter_worker", "hello:app"], env=env, capture_output=True,
                            text=True, timeout=30, cwd=APPS_DIR)
    assert result.returncode == 2
    assert f"expected to run as uid {account.uid} (--user), not 0" in result.stderr
