"""--preload: a zygote imports the app once and forks the workers.

Each scenario runs the real arbiter with real FastAPI workers forked by the real zygote. The
supervision scenarios shared with the exec spawner (crash, hung loop, max-requests, max-memory,
zero-drop reload and scale-down, SIGKILL of the arbiter) run under --preload in test_workers.py,
test_liveness.py and test_zero_drop.py; this file holds what only the fork server has.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import ARBITER_BIN, TEST_PYTHON, APPS_DIR, pid_alive, wait_until
from test_zero_drop import ctl, assert_no_failed_request, wait_only_workers

PRELOAD = ["--preload", "--no-access-log"]


def status(arbiter) -> dict:
    return json.loads(ctl(arbiter, "--json", "status"))


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        raw = stat.read()
    return int(raw[raw.rindex(")") + 2 :].split()[1])


def test_preloaded_workers_are_children_of_the_arbiter_and_the_zygote_shows_in_status(arbiter):
    arbiter.run(workers=2, extra=PRELOAD)
    pids = arbiter.wait_ready(2)

    current = status(arbiter)
    zygote = current["zygote"]
    assert zygote["state"] == "ready" and zygote["generation"] == 0 and zygote["import_seconds"] > 0
    assert zygote["memory_pss_bytes"] > 0 and zygote["forks"] == 2
    assert current["spawner"] == "fork"
    workers = {w["pid"] for w in current["workers"]} - {zygote["pid"]}
    assert workers <= pids
    for pid in workers:
        assert parent_of(pid) == arbiter.pid, "a forked worker must be re-parented to the arbiter (double fork)"
    assert all(w["memory_shared_bytes"] > 0 for w in current["workers"])


def test_status_zygote_is_null_without_preload(arbiter):
    arbiter.run(workers=1)
    arbiter.wait_ready(1)
    current = status(arbiter)
    assert current["zygote"] is None and current["spawner"] == "exec"


def test_zygote_killed_while_serving_leaves_workers_serving_and_comes_back_for_the_next_scale_up(arbiter):
    arbiter.run(workers=2, extra=PRELOAD)
    arbiter.wait_ready(2)
    zygote = status(arbiter)["zygote"]["pid"]
    workers = {w["pid"] for w in status(arbiter)["workers"]}

    os.kill(zygote, signal.SIGKILL)

    def back() -> dict | None:
        z = status(arbiter)["zygote"]
        return z if z and z["state"] == "ready" and z["pid"] != zygote else None

    wait_until(back, 30, "a new zygote, ready")
    assert {w["pid"] for w in status(arbiter)["workers"] if w["state"] == "ready"} == workers, "a worker was touched"
    assert arbiter.try_get_json() is not None
    ctl(arbiter, "scale", "3")
    assert len({w["pid"] for w in status(arbiter)["workers"] if w["state"] == "ready"}) == 3
    assert "zygote_died" in arbiter.output() or "died" in arbiter.output()


def test_app_that_starts_a_thread_at_import_is_refused_with_the_thread_named(arbiter):
    arbiter.run(app="thread_at_import:app", workers=2, extra=PRELOAD)
    code = arbiter.wait_exit(60)
    output = arbiter.output()
    assert code == 3, output
    assert "'cache-refresher'" in output and "lifespan startup" in output and "without --preload" in output


def test_check_preload_reports_the_thread_refusal(workdir):
    result = subprocess.run(
        [str(ARBITER_BIN), "check", "--preload", "--python", str(TEST_PYTHON), "--chdir", str(APPS_DIR),
         "thread_at_import:app"],
        capture_output=True, text=True, timeout=60, cwd=workdir,
    )
    assert result.returncode == 3, result.stderr
    assert "'cache-refresher'" in result.stderr


def test_check_preload_passes_for_a_forkable_app(workdir):
    result = subprocess.run(
        [str(ARBITER_BIN), "check", "--preload", "--python", str(TEST_PYTHON), "--chdir", str(APPS_DIR), "hello:app"],
        capture_output=True, text=True, timeout=60, cwd=workdir,
    )
    assert result.returncode == 0, result.stderr


def test_reload_whose_new_code_fails_to_import_keeps_the_old_generation_serving(arbiter, workdir):
    marker = workdir / "broken"
    arbiter.run(app="fails_when_marked:app", workers=2, extra=PRELOAD, env={"APP_BREAK_MARKER": str(marker)})
    arbiter.wait_ready(2)
    before = status(arbiter)
    old_workers = {w["pid"] for w in before["workers"]}
    marker.write_text("deploy went wrong")

    result = subprocess.run([str(ARBITER_BIN), "ctl", "--control", str(arbiter.control_path), "reload"],
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 1, result.stdout
    assert "failed" in result.stderr and "import" in result.stderr
    assert "boom at import" in arbiter.output()
    after = status(arbiter)
    assert {w["pid"] for w in after["workers"] if w["state"] == "ready"} == old_workers
    assert after["zygote"]["pid"] == before["zygote"]["pid"], "the old zygote keeps forking"
    assert after["reload"]["state"] == "failed"
    # The old zygote still forks: a recycled worker comes back.
    ctl(arbiter, "recycle", "1")
    assert arbiter.try_get_json() is not None


def test_reload_under_preload_forks_the_new_code_from_a_new_zygote(arbiter):
    arbiter.run(workers=2, extra=PRELOAD)
    arbiter.wait_ready(2)
    old_zygote = status(arbiter)["zygote"]["pid"]

    ctl(arbiter, "reload")

    current = status(arbiter)
    assert current["zygote"]["generation"] == 1 and current["zygote"]["pid"] != old_zygote
    assert all(w["generation"] == 1 for w in current["workers"])
    wait_until(lambda: not pid_alive(old_zygote), 10, "the old zygote to exit")


def test_sigkill_of_a_preloaded_worker_is_replaced_from_the_zygote_quickly(arbiter):
    arbiter.run(workers=2, extra=PRELOAD)
    arbiter.wait_ready(2)
    victim = status(arbiter)["workers"][0]["pid"]
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)

    def replaced():
        ready = {w["pid"] for w in status(arbiter)["workers"] if w["state"] == "ready"}
        return len(ready) == 2 and victim not in ready

    wait_until(replaced, 10, "the killed worker's replacement to be ready", interval=0.01)
    # Generous: a fork plus lifespan startup; the benchmark measures it precisely.
    assert time.monotonic() - killed_at < 5


def test_preloaded_big_app_uses_much_less_memory_than_exec_workers(arbiter, workdir):
    """W preloaded workers share the imported objects; W exec workers each build their own."""
    env = {"BIG_APP_MB": "60"}
    arbiter.run(app="big_app:app", workers=3, extra=PRELOAD, env=env)
    arbiter.wait_ready(3, timeout=120)
    preload_pss = total_tree_pss(arbiter)

    from conftest import Arbiter

    exec_arbiter = Arbiter(workdir / "exec")
    (workdir / "exec").mkdir()
    try:
        exec_arbiter.run(app="big_app:app", workers=3, extra=["--no-access-log"], env=env)
        exec_arbiter.wait_ready(3, timeout=120)
        exec_pss = total_tree_pss(exec_arbiter)
    finally:
        exec_arbiter.kill_everything()
    assert preload_pss < 0.75 * exec_pss, f"preload {preload_pss >> 20} MiB vs exec {exec_pss >> 20} MiB"


def total_tree_pss(arbiter) -> int:
    total = 0
    from conftest import children_of

    for pid in {arbiter.pid, *children_of(arbiter.pid)}:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
    return total


def test_arbiter_killed_with_sigkill_takes_the_zygote_and_every_worker_within_a_second(arbiter):
    arbiter.run(workers=2, extra=PRELOAD)
    children = arbiter.wait_ready(2)
    os.kill(arbiter.pid, signal.SIGKILL)
    arbiter.proc.wait(timeout=10)
    wait_until(lambda: not any(pid_alive(pid) for pid in children), 1.0, "the zygote and workers to die with the arbiter")


# ---- the app's descriptors, logging and threads (issue 18) ----------------------------------------

def write_through_every_worker(arbiter, workers: int) -> dict[int, dict]:
    """GET /write on fresh connections until every worker answered; {pid: its answer}."""
    answers: dict[int, dict] = {}

    def everyone() -> bool:
        response = arbiter.get(f"/write?line=request-{len(answers)}")
        assert response.status_code == 200, response.text
        answers[response.json()["pid"]] = response.json()
        return len(answers) >= workers

    wait_until(everyone, 30, f"{workers} workers to answer /write", interval=0.01)
    return answers


def test_preloaded_workers_write_to_the_files_the_app_opened_at_import(arbiter, workdir):
    arbiter.run(app="fds_at_import:app", workers=2, extra=PRELOAD, env={"FDS_AT_IMPORT_DIR": str(workdir)})
    arbiter.wait_ready(2)

    answers = write_through_every_worker(arbiter, 2)

    for pid, answer in answers.items():
        assert answer["targets"]["audit"] == str(workdir / "audit.log"), answer
        assert answer["targets"]["handler"] == str(workdir / "handler.log"), answer
    audit = (workdir / "audit.log").read_text()
    data = (workdir / "data.bin").read_text()
    for pid in answers:
        assert f"{pid} request-" in audit, f"worker {pid}'s open() writes did not reach the file:\n{audit}"
        assert f"{pid} request-" in data, f"worker {pid}'s reopened data file got nothing:\n{data}"
    assert "ignoring a channel line" not in arbiter.output(), "the app's bytes reached a worker channel"
    assert arbiter.try_get_json() is not None, "a worker died after the app closed its import-time fd"


def test_app_atexit_handlers_run_when_a_preloaded_worker_stops(arbiter, workdir):
    arbiter.run(app="fds_at_import:app", workers=2, extra=PRELOAD, env={"FDS_AT_IMPORT_DIR": str(workdir)})
    arbiter.wait_ready(2)
    answers = write_through_every_worker(arbiter, 2)
    arbiter.signal(signal.SIGTERM)
    assert arbiter.wait_exit(60) == 0
    audit = (workdir / "audit.log").read_text()
    for pid in answers:
        assert f"{pid} atexit" in audit, f"worker {pid}'s atexit handler did not run:\n{audit}"


def test_app_closing_its_import_time_fd_after_the_fork_leaves_the_worker_serving(arbiter, workdir):
    """prometheus_client's multiprocess mode closes its inherited files in a new pid: those are the
    app's, never the worker's channel or board."""
    arbiter.run(app="fds_at_import:app", workers=2, extra=[*PRELOAD, "--balance", "even"],
                env={"FDS_AT_IMPORT_DIR": str(workdir)})
    pids = arbiter.wait_ready(2)
    write_through_every_worker(arbiter, 2)
    for _ in range(20):
        assert arbiter.get("/write?line=again").status_code == 200
    assert {w["pid"] for w in status(arbiter)["workers"] if w["state"] == "ready"} <= pids, "a worker was replaced"
    assert "Assertion" not in arbiter.output() and "exited unexpectedly" not in arbiter.output(), arbiter.tail()


def test_forked_workers_descriptors_are_the_ones_the_arbiter_logged_and_none_is_the_apps(arbiter, workdir):
    """The zygote names where each worker has its listeners, channel and board; the arbiter checks
    that against the request and logs it; none of them is a number the app opened at import."""
    arbiter.run(app="fds_at_import:app", workers=2, extra=[*PRELOAD, "--log-level", "debug", "--balance", "even"],
                env={"FDS_AT_IMPORT_DIR": str(workdir)})
    arbiter.wait_ready(2)
    answers = write_through_every_worker(arbiter, 2)
    output = arbiter.output()
    for pid, answer in answers.items():
        mine = answer["arbiter_fds"]
        listeners = mine["ARBITER_LISTEN_FD_NUMBERS"]
        assert listeners and mine["ARBITER_CHANNEL_FD"] and mine["ARBITER_BOARD_FD"], mine
        arbiter_fds = {int(fd) for fd in listeners.split(",")} | {int(mine["ARBITER_CHANNEL_FD"]),
                                                                   int(mine["ARBITER_BOARD_FD"])}
        assert not arbiter_fds & set(answer["import_fds"].values()), (arbiter_fds, answer["import_fds"])
        assert (f"(pid {pid}): forked by the zygote: listeners at fds {listeners}, channel {mine['ARBITER_CHANNEL_FD']}, "
                f"board {mine['ARBITER_BOARD_FD']}") in output, output


def test_logging_handlers_the_app_added_at_import_keep_working_in_every_preloaded_worker(arbiter, workdir):
    arbiter.run(app="fds_at_import:app", workers=2, extra=["--preload"], env={"FDS_AT_IMPORT_DIR": str(workdir)})
    arbiter.wait_ready(2)
    answers = write_through_every_worker(arbiter, 2)
    logged = (workdir / "handler.log").read_text()
    for pid in answers:
        assert f"{pid} request-" in logged, f"worker {pid}'s FileHandler lines are missing:\n{logged}"
    # uvicorn's own lines still name the worker that wrote them, not the zygote.
    for pid in answers:
        assert f" pid {pid}] " in arbiter.output() and "[worker " in arbiter.output()


def test_thread_restarted_by_an_at_fork_hook_is_forked_and_runs_in_every_worker(arbiter):
    arbiter.run(app="thread_restarted_at_fork:app", workers=2, extra=PRELOAD)
    arbiter.wait_ready(2)
    seen: dict[int, list[str]] = {}

    def everyone() -> bool:
        payload = arbiter.try_get_json()
        if payload is not None:
            seen[payload["pid"]] = payload["threads"]
        return len(seen) >= 2

    wait_until(everyone, 20, "both workers to answer", interval=0.01)
    assert all("span-flusher" in threads for threads in seen.values()), seen


def test_check_preload_refusal_says_what_happened_and_names_no_pid_0(workdir):
    result = subprocess.run(
        [str(ARBITER_BIN), "check", "--preload", "--python", str(TEST_PYTHON), "--chdir", str(APPS_DIR),
         "thread_at_import:app"],
        capture_output=True, text=True, timeout=60, cwd=workdir,
    )
    assert result.returncode == 3, result.stderr
    assert "(pid 0)" not in result.stderr and "traceback is above" not in result.stderr, result.stderr
    assert "refused to fork it" in result.stderr, result.stderr


def test_forked_workers_command_line_says_worker_not_zygote(arbiter):
    from conftest import cmdline

    arbiter.run(workers=2, extra=PRELOAD)
    arbiter.wait_ready(2)
    zygote = status(arbiter)["zygote"]["pid"]
    for worker in status(arbiter)["workers"]:
        line = cmdline(worker["pid"])
        assert "--zygote" not in line and f"worker {worker['id']} (forked from zygote {zygote})" in line, line
    assert "--zygote" in cmdline(zygote)


def test_unknown_native_thread_at_import_is_warned_about_with_its_count_and_forked(workdir):
    """`check --preload` goes the way `run` goes (the same zygote): a warning, then serving."""
    result = subprocess.run(
        [str(ARBITER_BIN), "check", "--preload", "--python", str(TEST_PYTHON), "--chdir", str(APPS_DIR),
         "native_thread_at_import:app"],
        capture_output=True, text=True, timeout=60, cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    assert "left 1 native thread(s) that no fork handler stops or restarts" in result.stderr, result.stderr


@pytest.mark.parametrize("mode", [pytest.param([], id="exec"), pytest.param(["--preload"], id="preload")])
def test_worker_and_zygote_exit_without_a_resource_warning(workdir, mode):
    result = subprocess.run(
        [str(ARBITER_BIN), "check", *mode, "--python", str(TEST_PYTHON), "--chdir", str(APPS_DIR), "hello:app"],
        capture_output=True, text=True, timeout=60, cwd=workdir, env={**os.environ, "PYTHONWARNINGS": "default"},
    )
    assert result.returncode == 0, result.stderr
    assert "ResourceWarning" not in result.stderr, result.stderr


def check_preload(app: str, workdir, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ARBITER_BIN), "check", "--preload", "--python", str(TEST_PYTHON), "--chdir", str(APPS_DIR), app],
        capture_output=True, text=True, timeout=60, cwd=workdir, env={**os.environ, **env},
    )


def test_openmp_used_at_import_is_refused_naming_openmp_and_both_fixes(workdir):
    result = check_preload("openmp_at_import:app", workdir, {"OMP_NUM_THREADS": "2"})
    assert result.returncode == 3, result.stderr
    assert "OpenMP (libgomp)" in result.stderr and "OMP_NUM_THREADS=1" in result.stderr, result.stderr
    assert "lifespan startup" in result.stderr, result.stderr
    assert "traceback is above" not in result.stderr, result.stderr


def test_openmp_app_imported_with_omp_num_threads_1_is_forked(workdir):
    result = check_preload("openmp_at_import:app", workdir, {"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
