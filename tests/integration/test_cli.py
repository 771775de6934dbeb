"""The command line: usage errors exit 2 and say what is wrong; --version and --help."""

import re
import subprocess

import pytest

from conftest import APPS_DIR, ARBITER_BIN, TEST_PYTHON, free_port

# Every option of `arbiter run` in DESIGN.md ("Command line"); the names are a stable interface.
RUN_FLAGS = [
    "-w", "--workers", "-b", "--bind", "--python", "--chdir", "--env", "--env-file", "--name",
    "--config", "--control", "--timeout", "--boot-timeout", "--graceful-timeout", "--max-requests",
    "--max-requests-jitter", "--max-memory", "--reuse-port", "--backlog", "--user", "--group",
    "--metrics", "--log-level", "--log-format", "--access-log", "--no-access-log", "--factory",
    "--loop", "--http", "--ws", "--lifespan", "--proxy-headers", "--forwarded-allow-ips",
    "--root-path", "--timeout-keep-alive", "--limit-concurrency", "--lame-duck",
]


def _exit_code(arbiter, *argv: str, timeout: float = 20) -> int:
    arbiter.start(argv)
    return arbiter.wait_exit(timeout)


def test_unknown_flag_exits_2_with_usage(arbiter):
    code = _exit_code(arbiter, "run", "--no-such-flag", "hello:app")

    assert code == 2
    assert "usage" in arbiter.output().lower()
    assert "--no-such-flag" in arbiter.output()


def test_non_numeric_workers_exits_2_naming_the_flag(arbiter):
    code = _exit_code(arbiter, "run", "--workers", "abc", "--python", str(TEST_PYTHON), "hello:app")

    assert code == 2
    assert "--workers" in arbiter.output()


def test_missing_python_exits_2_naming_the_path(arbiter):
    code = _exit_code(arbiter, "run", "-w", "1", "-b", f"127.0.0.1:{free_port()}", "--python", "/nonexistent/python",
                      "--chdir", str(APPS_DIR), "hello:app")

    assert code == 2
    assert "/nonexistent/python" in arbiter.output()


def test_venv_without_uvicorn_exits_2_saying_how_to_install_it(arbiter, venv_without_uvicorn):
    arbiter.run(workers=1, python=str(venv_without_uvicorn))

    code = arbiter.wait_exit(60)

    assert code == 2
    output = arbiter.output()
    assert "uvicorn" in output
    assert "install" in output.lower()


@pytest.mark.parametrize("flag, value, message", [
    ("--workers", "1025", "--workers: '1025' is not a whole number from 1 to 1024"),
    ("--backlog", "0", "--backlog: '0' is not a whole number from 1 to 65535"),
    ("--socket-mode", "1000", "--socket-mode: '1000' is not an octal file mode from 0 to 777"),
    ("--graceful-timeout", "86401", "--graceful-timeout: '86401' is not a duration from 0 to 86400 seconds"),
    ("--lame-duck", "3601", "--lame-duck: '3601' is not a duration from 0 to 3600 seconds"),
    ("--max-requests", "4294967295", "--max-requests: '4294967295' is not a whole number from 0 to 1000000000"),
    ("--max-memory", "17T", "--max-memory: '17T' is not a size from 0 to 16T"),
    ("--limit-concurrency", "0", "--limit-concurrency: '0' is not a whole number from 1 to 1000000"),
])
def test_numeric_flag_out_of_range_exits_2_naming_the_flag_and_its_range(arbiter, flag, value, message):
    code = _exit_code(arbiter, "run", "--python", str(TEST_PYTHON), flag, value, "hello:app")

    assert code == 2
    assert message in arbiter.output()


def test_max_requests_jitter_of_uint_max_exits_2_instead_of_crashing(arbiter):
    code = _exit_code(arbiter, "run", "--python", str(TEST_PYTHON), "--max-requests", "100",
                      "--max-requests-jitter", "4294967295", "hello:app")

    assert code == 2, f"exit {code} (a negative code is death by signal: -8 is SIGFPE)"
    assert "--max-requests-jitter: '4294967295' is not a whole number from 0 to 1000000000" in arbiter.output()


@pytest.mark.parametrize("value", ["0", "86401", "1e400", "soon"])
def test_ctl_timeout_out_of_range_exits_2_naming_the_range(workdir, value):
    result = subprocess.run([str(ARBITER_BIN), "ctl", "--control", str(workdir / "none.sock"), "--timeout", value,
                             "status"], capture_output=True, text=True, timeout=10)

    assert result.returncode == 2
    assert f"--timeout '{value}' is not a number of seconds above 0 and at most 86400" in result.stderr


def test_ctl_scale_beyond_what_a_number_holds_exits_2_naming_the_range(workdir):
    result = subprocess.run([str(ARBITER_BIN), "ctl", "--control", str(workdir / "none.sock"), "scale",
                             "+99999999999999999999"], capture_output=True, text=True, timeout=10)

    assert result.returncode == 2
    assert "is not a whole number from 1 to 1024, or +N/-N" in result.stderr


def test_version_prints_a_version_and_exits_0(arbiter):
    code = _exit_code(arbiter, "--version")

    assert code == 0
    assert re.search(r"\d+\.\d+", arbiter.output())


def test_help_exits_0_and_names_every_command(arbiter):
    code = _exit_code(arbiter, "--help")

    assert code == 0
    for command in ("run", "check", "ctl"):
        assert re.search(rf"\b{command}\b", arbiter.output()), f"--help does not mention {command}"


def test_run_help_mentions_every_run_flag_and_exits_0(arbiter):
    code = _exit_code(arbiter, "run", "--help")

    assert code == 0
    text = arbiter.output()
    missing = [flag for flag in RUN_FLAGS if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text)]
    assert not missing, f"run --help does not mention {missing}"
