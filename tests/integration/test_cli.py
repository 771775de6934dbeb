"""The command line: usage errors exit 2 and say what is wrong; --version and --help."""

import re

from conftest import APPS_DIR, TEST_PYTHON, free_port

# Every option of `arbiter run` in DESIGN.md ("Command line"); the names are a stable interface.
RUN_FLAGS = [
    "-w", "--workers", "-b", "--bind", "--python", "--chdir", "--env", "--env-file", "--name",
    "--config", "--control", "--timeout", "--boot-timeout", "--graceful-timeout", "--max-requests",
    "--max-requests-jitter", "--max-memory", "--reuse-port", "--backlog", "--user", "--group",
    "--metrics", "--log-level", "--log-format", "--access-log", "--no-access-log", "--factory",
    "--loop", "--http", "--ws", "--lifespan", "--proxy-headers", "--forwarded-allow-ips",
    "--root-path", "--timeout-keep-alive", "--limit-concurrency",
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
