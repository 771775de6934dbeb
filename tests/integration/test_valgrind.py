"""The arbiter serving real workers under valgrind: no memory errors, no definite leaks."""

import re
import shutil
import signal
import time

import pytest

from conftest import pid_alive, wait_until

pytestmark = [pytest.mark.valgrind, pytest.mark.usefixtures("valgrind_installed")]


@pytest.fixture
def valgrind_installed():
    # A failure, not a skip: a skip would hide a missing install step.
    if shutil.which("valgrind") is None:
        pytest.fail("valgrind is not installed (Debian package `valgrind`; scripts/test.sh's install stage installs it)")


def valgrind_wrapper(arbiter) -> list[str]:
    """valgrind as the arbiter's wrapper, one report per process in the test's work directory."""
    return ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite", "--error-exitcode=99",
            f"--log-file={arbiter.workdir / 'valgrind.%p.log'}"]


def assert_valgrind_clean(arbiter, code: int) -> None:
    """The arbiter exited 0 and its valgrind report has no errors and no definite leaks."""
    text = (arbiter.workdir / f"valgrind.{arbiter.pid}.log").read_text()
    definitely_lost = re.search(r"definitely lost: ([\d,]+) bytes", text)
    assert code == 0, text[-4000:]
    assert definitely_lost is None or definitely_lost.group(1) == "0", text[-4000:]
    assert re.search(r"ERROR SUMMARY: 0 errors", text), text[-4000:]


def test_serving_and_graceful_stop_under_valgrind_has_no_errors_and_no_definite_leaks(arbiter):
    arbiter.run(workers=2, wrapper=valgrind_wrapper(arbiter))
    arbiter.wait_ready(2, timeout=60)
    for _ in range(20):
        assert arbiter.try_get_json(timeout=5) is not None

    arbiter.signal(signal.SIGTERM)
    code = arbiter.wait_exit(60)

    assert_valgrind_clean(arbiter, code)


def test_ending_what_the_app_left_and_a_paused_loop_under_valgrind_have_no_errors(arbiter):
    arbiter.run(app="orphans:app", workers=1, extra=["--timeout", "2"], wrapper=valgrind_wrapper(arbiter))
    arbiter.wait_ready(1, timeout=60)
    child = arbiter.get("/child", timeout=10).json()["child"]
    daemon = arbiter.get("/daemon", timeout=10).json()["daemon"]
    arbiter.signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        wait_until(lambda: time.monotonic() - stopped_at >= 5, 10, "a pause longer than --timeout")
    finally:
        arbiter.signal(signal.SIGCONT)
    wait_until(lambda: "event loop stalled" in arbiter.output(), 20, "the stall to be noticed")

    arbiter.signal(signal.SIGTERM)
    code = arbiter.wait_exit(60)

    assert_valgrind_clean(arbiter, code)
    assert not pid_alive(child) and not pid_alive(daemon)
