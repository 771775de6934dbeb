"""Coming from gunicorn or uvicorn: the seed's command line, gunicorn's spellings, `arbiter migrate`
on the gunicorn configs in tests/migrate/, `run -c gunicorn.conf.py`, and --pid."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import APPS_DIR, ARBITER_BIN, REPO, TEST_PYTHON, free_port, wait_until
from test_upgrade import install_new_build, installed, run_installed, status, upgrade  # noqa: F401 (fixture)

CONFIGS = REPO / "tests" / "migrate"
sys.path.insert(0, str(REPO / "worker-shim"))
from arbiter_worker.gunicorn_config import HOOKS, SETTINGS  # noqa: E402


def migrate(config: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(ARBITER_BIN), "migrate", str(config), "--python", str(TEST_PYTHON)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def lines(result: subprocess.CompletedProcess, level: str) -> dict[str, str]:
    """NAME -> TEXT of the stderr lines of one level ("note", "warning", "unmapped")."""
    found = {}
    for line in result.stderr.splitlines():
        if line.startswith(level + ": "):
            name, text = line[len(level) + 2:].split(": ", 1)
            found[name] = text
    return found


def names_set_in(config: Path) -> set[str]:
    tree = ast.parse(config.read_text())
    assigned = {target.id for node in tree.body if isinstance(node, ast.Assign)
                for target in node.targets if isinstance(target, ast.Name)}
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    return assigned | defined


# ---- the command line ---------------------------------------------------------------------------

def test_the_seeds_gunicorn_command_line_serves(arbiter):
    """`gunicorn -w 4 -k uvicorn.workers.UvicornWorker app:app`, with the binary swapped."""
    arbiter.run(workers=4, extra=["-k", "uvicorn.workers.UvicornWorker"])

    arbiter.wait_ready(4, timeout=90)

    assert "--worker-class uvicorn.workers.UvicornWorker: accepted, arbiter's workers are uvicorn's" in arbiter.output()


@pytest.mark.parametrize("flags, message", [
    (["--daemon"], "--daemon refused: arbiter stays in the foreground for its supervisor: use systemd"),
    (["-D"], "--daemon refused"),
    (["-k", "sync"], "--worker-class sync: arbiter serves ASGI apps with uvicorn workers only"),
    (["--worker-class", "gevent"], "--worker-class gevent: arbiter serves ASGI apps with uvicorn workers only"),
    (["--reload"], "`arbiter ctl reload` (or SIGHUP)"),
], ids=["daemon", "D", "sync", "gevent", "reload"])
def test_refused_gunicorn_and_uvicorn_flags_exit_2_saying_why(arbiter, flags, message):
    arbiter.run(workers=1, extra=flags)

    assert arbiter.wait_exit(20) == 2
    assert message in arbiter.output()
    assert arbiter.workers_seen == set()


def test_worker_tmp_dir_is_ignored_with_a_notice(arbiter):
    arbiter.run(workers=1, extra=["--worker-tmp-dir", "/dev/shm"])

    arbiter.wait_ready(1)

    assert "--worker-tmp-dir ignored: gunicorn's heartbeat file" in arbiter.output()


# ---- arbiter migrate ----------------------------------------------------------------------------

def test_the_every_setting_config_sets_every_documented_gunicorn_setting():
    assert names_set_in(CONFIGS / "every_setting.conf.py") - {"ssl"} == set(SETTINGS)


def test_migrate_every_setting_prints_the_options_that_map_and_a_line_for_each_other(workdir):
    result = migrate(CONFIGS / "every_setting.conf.py")

    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout) == {
        "bind": ["127.0.0.1:8001", "unix:/run/app.sock", "127.0.0.2:8000"],
        "backlog": 1024, "workers": 3, "max-requests": 1000, "max-requests-jitter": 50, "timeout": 60,
        "graceful-timeout": 20, "timeout-keep-alive": 5, "preload": True, "reuse-port": True, "chdir": "/srv/app",
        "env": ["DATABASE_URL=postgres://db/app", "MODE=production", "PYTHONPATH=/srv/lib:/srv/vendor"],
        "pid": "/run/app.pid", "user": "www-data", "group": "www-data", "forwarded-allow-ips": "10.0.0.1,10.0.0.2",
        "access-log": True, "log-file": "/var/log/app/error.log", "log-level": "warning", "name": "shop",
        "loop": "uvloop", "lifespan": "on", "root-path": "/api", "control": "/run/app/control.sock",
    }
    unmapped = lines(result, "unmapped")
    assert set(unmapped) == {
        "reload", "spew", "daemon", "umask", "access_log_format", "logger_class", "logconfig", "logconfig_dict",
        "logconfig_json", "syslog", "statsd_host", "paste", "proxy_protocol", "protocol", "keyfile", "certfile",
        "http_protocols", "http2_cleartext", "dirty_apps", "dirty_workers", "control_socket_mode",
    }
    assert "use systemd" in unmapped["daemon"] and "arbiter ctl reload" in unmapped["reload"]
    assert "proxy in front" in unmapped["certfile"]
    # Every setting is accounted for: an option, a note or an unmapped line; none is called unknown.
    mapped = {"bind", "backlog", "workers", "max_requests", "max_requests_jitter", "timeout", "graceful_timeout",
              "keepalive", "preload_app", "reuse_port", "chdir", "raw_env", "pythonpath", "pidfile", "user", "group",
              "forwarded_allow_ips", "accesslog", "errorlog", "loglevel", "proc_name", "asgi_loop", "asgi_lifespan",
              "root_path"}
    assert set(SETTINGS) == mapped | set(unmapped) | set(lines(result, "note"))
    assert lines(result, "warning") == {}
    assert "24 options for --config; 21 unmapped, 0 warnings" in result.stderr


def test_the_hooks_config_defines_every_documented_gunicorn_hook():
    assert names_set_in(CONFIGS / "hooks.conf.py") - {"bind", "workers", "worker_class"} == set(HOOKS)


def test_migrate_hooks_names_each_hooks_replacement_and_exits_1():
    result = migrate(CONFIGS / "hooks.conf.py")

    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout) == {"bind": ["127.0.0.1:8001"], "workers": 2, "access-log": False}
    unmapped = lines(result, "unmapped")
    assert set(unmapped) == set(HOOKS)
    expected = {
        "post_fork": ["lifespan startup", "os.register_at_fork"],
        "post_worker_init": ["lifespan startup", "os.register_at_fork"],
        "child_exit": ["prometheus_client", "/metrics", "--app-metrics", "not built yet"],
        "when_ready": ["Type=notify", "ExecStartPost="],
        "on_starting": ["ExecStartPre="],
        "pre_request": ["ASGI middleware"],
        "post_request": ["ASGI middleware"],
        "worker_abort": ["already logs the hung worker's Python stack"],
        "on_exit": ["ExecStopPost="],
    }
    for hook, words in expected.items():
        for word in words:
            assert word in unmapped[hook], (hook, word, unmapped[hook])
    assert "uvicorn_worker.UvicornWorker: arbiter's workers are uvicorn's" in lines(result, "note")["worker_class"]


def test_migrate_unknown_settings_warns_about_each_and_exits_1():
    result = migrate(CONFIGS / "unknown.conf.py")

    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout) == {"workers": 2, "access-log": False}
    warnings = lines(result, "warning")
    assert set(warnings) == {"wokers", "max_request", "post_forks"}  # not the imports
    assert all("no gunicorn setting or hook" in text for text in warnings.values())
    assert lines(result, "unmapped") == {}


def test_migrate_syntax_error_exits_2_with_the_line_and_no_json():
    result = migrate(CONFIGS / "syntax_error.conf.py")

    assert result.returncode == 2
    assert result.stdout == ""
    assert "syntax_error.conf.py:2: syntax error" in result.stderr
    assert "cannot be evaluated" in result.stderr


def test_migrate_missing_file_exits_2_saying_it_cannot_be_read(workdir):
    result = migrate(workdir / "nope.conf.py")

    assert result.returncode == 2
    assert "cannot read it" in result.stderr


def test_migrate_config_that_maps_completely_exits_0():
    result = migrate(CONFIGS / "serves.conf.py", env={"TEST_BIND": "127.0.0.1:8123"})

    assert result.returncode == 0, result.stderr
    assert "everything maps" in result.stderr
    assert lines(result, "unmapped") == {} and lines(result, "warning") == {}


def test_the_migrated_config_serves_the_app(arbiter, workdir):
    bind = f"127.0.0.1:{free_port()}"
    result = migrate(CONFIGS / "serves.conf.py", env={"TEST_BIND": bind})
    config = workdir / "arbiter.json"
    config.write_text(result.stdout)

    arbiter.bind = bind
    arbiter.start(["run", "--config", str(config), "--python", str(TEST_PYTHON), "--chdir", str(APPS_DIR),
                   "--control", str(arbiter.control_path), "hello:app"])

    arbiter.wait_ready(2)
    assert arbiter.get("/env").json()["GREETING"] == "from-gunicorn-conf"


def test_run_with_a_gunicorn_config_serves_the_app(arbiter):
    bind = f"127.0.0.1:{free_port()}"
    arbiter.bind = bind
    arbiter.start(["run", "-c", str(CONFIGS / "serves.conf.py"), "--python", str(TEST_PYTHON), "--chdir",
                   str(APPS_DIR), "--control", str(arbiter.control_path), "hello:app"], env={"TEST_BIND": bind})

    arbiter.wait_ready(2)
    assert arbiter.get("/env").json()["GREETING"] == "from-gunicorn-conf"


def test_run_with_a_gunicorn_config_whose_hooks_would_be_dropped_refuses_listing_them(arbiter):
    arbiter.run(workers=1, extra=["-c", str(CONFIGS / "hooks.conf.py")])

    assert arbiter.wait_exit(60) == 2
    output = arbiter.output()
    assert "unmapped: post_fork: hook: use lifespan startup" in output
    assert "unmapped: child_exit:" in output
    assert "20 gunicorn settings or hooks would be dropped" in output
    assert arbiter.workers_seen == set()


# ---- --pid --------------------------------------------------------------------------------------

def test_pid_file_holds_the_arbiters_pid_and_is_removed_at_exit(arbiter, workdir):
    pid_file = workdir / "app.pid"
    arbiter.run(workers=1, extra=["--pid", str(pid_file)])
    arbiter.wait_ready(1)

    assert pid_file.read_text() == f"{arbiter.pid}\n"
    arbiter.signal(15)
    assert arbiter.wait_exit(60) == 0
    assert not pid_file.exists()


def test_pid_file_of_a_running_process_is_refused(arbiter, workdir):
    pid_file = workdir / "app.pid"
    pid_file.write_text(f"{os.getpid()}\n")

    arbiter.run(workers=1, extra=["-p", str(pid_file)])

    assert arbiter.wait_exit(20) == 2
    assert f"process {os.getpid()} is running and owns this pidfile" in arbiter.output()
    assert pid_file.read_text() == f"{os.getpid()}\n"


def test_pid_file_stays_through_an_in_place_upgrade(arbiter, installed, workdir):
    pid_file = workdir / "app.pid"
    run_installed(arbiter, installed, extra=["--pid", str(pid_file)])
    arbiter.wait_ready(2)
    install_new_build(installed, b"pidfile")

    result = upgrade(arbiter)

    assert result.returncode == 0, result.stdout + result.stderr
    wait_until(lambda: status(arbiter)["upgrades"] == 1, 30, "the upgrade")
    assert pid_file.read_text() == f"{arbiter.pid}\n"
    arbiter.signal(15)
    assert arbiter.wait_exit(60) == 0
    assert not pid_file.exists()


def test_run_with_a_gunicorn_config_upgrades_in_place(arbiter, installed):
    """The pre-flight and the new image parse the same command line: the gunicorn config again."""
    bind = f"127.0.0.1:{free_port()}"
    run_installed(arbiter, installed, extra=["-c", str(CONFIGS / "serves.conf.py")], bind=bind,
                  env={"TEST_BIND": bind})
    workers = arbiter.wait_ready(2)
    install_new_build(installed, b"gunicorn-conf")

    result = upgrade(arbiter)

    assert result.returncode == 0, result.stdout + result.stderr
    wait_until(lambda: status(arbiter)["upgrades"] == 1, 30, "the upgrade")
    assert {w["pid"] for w in status(arbiter)["workers"]} == workers
