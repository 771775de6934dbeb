"""--log-file: the arbiter's and the workers' logs go to a file, and SIGUSR1 reopens it after rotation."""

import json
import signal

from conftest import wait_until


def test_log_file_receives_arbiter_and_worker_lines(arbiter, workdir):
    log_file = workdir / "app.log"
    arbiter.run(workers=2, extra=["--log-file", str(log_file)])
    arbiter.wait_ready(2)
    assert arbiter.get("/").status_code == 200
    wait_until(lambda: '"GET / HTTP/1.1" 200' in log_file.read_text(), 10, "the worker's access line in the log file")
    text = log_file.read_text()
    assert "workers ready" in text, text[-2000:]
    assert "[worker " in text, text[-2000:]


def test_sigusr1_reopens_the_log_file_in_the_arbiter_and_every_worker(arbiter, workdir):
    log_file = workdir / "app.log"
    rotated = workdir / "app.log.1"
    arbiter.run(workers=2, extra=["--log-file", str(log_file)])
    pids = arbiter.wait_ready(2)
    log_file.rename(rotated)  # what logrotate does (without copytruncate)
    arbiter.signal(signal.SIGUSR1)
    wait_until(lambda: log_file.exists() and "reopened" in log_file.read_text(), 10,
               "the arbiter's 'reopened' line in the new file")
    # Every worker writes to the new file after the reopen: its access lines name its pid via the
    # app's JSON answer, so send requests until each worker has answered at least once.
    def every_worker_logged_to_the_new_file() -> bool:
        seen = {arbiter.get("/").json()["pid"] for _ in range(20)}
        text = log_file.read_text()
        return seen >= pids and text.count('"GET / HTTP/1.1" 200') >= 20 and all(
            f"pid {pid}]" in text for pid in pids)
    wait_until(every_worker_logged_to_the_new_file, 20, "access lines of every worker in the reopened file")
    assert "reopened" not in rotated.read_text()


def test_log_file_dash_sends_the_arbiters_and_the_workers_lines_to_stdout(arbiter, workdir):
    stdout_path = workdir / "stdout.log"
    # The fixture collects stdout and stderr in one file: keep stderr there, and stdout apart.
    arbiter.run(workers=1, extra=["--log-file", "-", "--log-format", "json"],
                wrapper=["/bin/sh", "-c", f'exec "$@" >{stdout_path}', "sh"])
    arbiter.wait_ready(1)
    assert arbiter.get("/").status_code == 200
    # JSON escapes the quotes of the access line.
    wait_until(lambda: '\\"GET / HTTP/1.1\\" 200' in stdout_path.read_text(), 10, "the worker's access line on stdout")
    lines = [json.loads(line) for line in stdout_path.read_text().splitlines()]
    assert any(line.get("logger") == "arbiter" and "ready" in line["message"] for line in lines), lines[:10]
    assert any('"GET / HTTP/1.1" 200' in line.get("message", "") for line in lines), lines[-10:]
    assert arbiter.output() == "", "nothing may go to stderr: " + arbiter.output()[-2000:]


def test_unwritable_log_file_exits_2_naming_it(arbiter, workdir):
    arbiter.run(workers=1, extra=["--log-file", str(workdir / "missing-dir" / "app.log")])
    assert arbiter.wait_exit(10) == 2
    assert "missing-dir/app.log" in arbiter.output()
