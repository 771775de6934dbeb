"""The worker channel under bad bytes: what a worker writes there never reaches the arbiter's log
raw, and garbage does not stop the worker from serving."""

from conftest import wait_until

LOG_DEADLINE = 30  # seconds for one worker to import the app and for the arbiter to log its lines


def test_garbage_channel_lines_are_logged_escaped_one_log_line_each(arbiter):
    arbiter.run(app="garbage_channel:app", workers=1)

    wait_until(lambda: "forged line" in arbiter.output(), LOG_DEADLINE, "the forged line logged as a bad line")

    output = arbiter.output()
    assert "not json \\x1b[2J" in output
    assert "\x1b" not in output
    forged = [line for line in output.splitlines() if "forged line" in line]
    assert len(forged) == 1 and forged[0].index("2024-01-01T00:00:00.000Z") > 0, forged


def test_over_long_channel_line_is_reported_once_and_the_worker_still_serves(arbiter):
    arbiter.run(app="garbage_channel:app", workers=1)

    arbiter.wait_ready(1, timeout=LOG_DEADLINE)

    assert arbiter.output().count("discarding a channel line longer than") == 1
    assert "pid" in arbiter.get("/").json()
