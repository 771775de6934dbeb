"""The zygote's fork rules in-process: where a forked worker's fds are, and the thread verdict.

Each thread test runs judge() in a fresh interpreter (a subprocess), so the threads it starts do not
outlive the test and pytest's own threads do not count."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from arbiter_worker.environment import EnvironmentInvalid, parse_environment
from arbiter_worker.zygote import worker_fds

SHIM_DIR = Path(__file__).resolve().parents[1]


def test_worker_fds_keep_the_numbers_the_zygote_received() -> None:
    fds = worker_fds([7, 4, 9, 12], listen_count=2, with_board=True)
    assert (fds.channel, fds.listeners, fds.board) == (7, (4, 9), 12)
    assert fds.as_message() == {"channel": 7, "listen": [4, 9], "board": 12}


def test_worker_fds_refuse_a_request_with_the_wrong_number_of_fds() -> None:
    with pytest.raises(ValueError, match="carries 2 fds, expected 3"):
        worker_fds([7, 4], listen_count=1, with_board=True)


def test_environment_takes_listeners_where_the_numbers_say() -> None:
    env = parse_environment({"ARBITER_LISTEN_FDS": "2", "ARBITER_LISTEN_FD_NUMBERS": "9,4", "ARBITER_CHANNEL_FD": "3"})
    assert env.listen_fds == (9, 4) and env.channel_fd == 3


def test_environment_refuses_numbers_that_disagree_with_the_count() -> None:
    with pytest.raises(EnvironmentInvalid, match="must list ARBITER_LISTEN_FDS=2"):
        parse_environment({"ARBITER_LISTEN_FDS": "2", "ARBITER_LISTEN_FD_NUMBERS": "9"})


def judge_in(code: str) -> dict:
    script = textwrap.dedent(code) + textwrap.dedent(
        """
        import json, sys
        from arbiter_worker import forksafety
        verdict = forksafety.judge()
        print(json.dumps({"refusal": verdict.refusal, "warning": verdict.warning}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(SHIM_DIR)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_a_python_thread_nothing_restarts_is_refused_by_name() -> None:
    verdict = judge_in("import threading, time\nthreading.Thread(target=time.sleep, args=(60,), name='poller', daemon=True).start()\n")
    assert verdict["refusal"] and "'poller'" in verdict["refusal"] and "register_at_fork" in verdict["refusal"]


def test_a_python_thread_restarted_at_fork_is_fine() -> None:
    verdict = judge_in(
        """
        import os, threading, time
        def start():
            threading.Thread(target=time.sleep, args=(60,), name='exporter', daemon=True).start()
        start()
        os.register_at_fork(after_in_child=start)
        """
    )
    assert verdict == {"refusal": None, "warning": None}


def test_no_thread_needs_no_probe_and_is_fine() -> None:
    assert judge_in("") == {"refusal": None, "warning": None}
