"""A gunicorn.conf.py, read as gunicorn reads it, turned into arbiter's --config options.

Run by the arbiter binary as ``PYTHON -m arbiter_worker.gunicorn_config FILE`` (``arbiter migrate``,
``arbiter run -c FILE.py``), with the app's interpreter: the file is Python and may import the app's
settings, exactly as under gunicorn. gunicorn itself is not imported; its settings list (gunicorn/
config.py, every ``Setting`` subclass) is restated in SETTINGS with its default, so a setting left at
gunicorn's default carries nothing over.

Each setting the file changes gets one of three outcomes:
- an option: it means the same in arbiter (the JSON object of a --config file);
- a note: nothing changes for the app (gunicorn's UvicornWorker ignored it too, or arbiter does it
  anyway) -- said, not needed;
- unmapped: arbiter does it differently, and the line says what to use instead (a hook, TLS,
  syslog...). ``arbiter migrate`` exits 1; ``arbiter run -c`` refuses to drop it.
A name that is no gunicorn setting at all is a warning: gunicorn ignored it, which may hide a typo.

The result is one JSON object written to the stdout the process started with:
``{"options": {...}, "lines": [["note"|"warning"|"unmapped", NAME, TEXT], ...]}``. While the file runs,
its own prints go to stderr, so they never corrupt that object. Exit 2 when the file cannot be read
or evaluated (the reason on stderr), else 0.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback
import types
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

Options = Dict[str, Any]
Lines = List[Tuple[str, str, str]]

UVICORN_WORKERS = ("uvicorn.workers.UvicornWorker", "uvicorn_worker.UvicornWorker")
UNSET = object()


class Conversion:
    """What one file becomes: the options that map and a line for everything else."""

    def __init__(self) -> None:
        self.options: Options = {}
        self.lines: Lines = []

    def note(self, name: str, text: str) -> None:
        self.lines.append(("note", name, text))

    def warning(self, name: str, text: str) -> None:
        self.lines.append(("warning", name, text))

    def unmapped(self, name: str, text: str) -> None:
        self.lines.append(("unmapped", name, text))


Convert = Callable[[Conversion, str, Any], None]


def option(key: str, kind: Callable[[Any], Any] = str) -> Convert:
    def convert(out: Conversion, name: str, value: Any) -> None:
        out.options[key] = kind(value)

    return convert


def flag(key: str) -> Convert:
    def convert(out: Conversion, name: str, value: Any) -> None:
        out.options[key] = bool(value)

    return convert


def note(text: str) -> Convert:
    def convert(out: Conversion, name: str, value: Any) -> None:
        out.note(name, text)

    return convert


def unmapped(text: str) -> Convert:
    def convert(out: Conversion, name: str, value: Any) -> None:
        out.unmapped(name, text)

    return convert


def whole(value: Any) -> int:
    return int(value)


def seconds(value: Any) -> Union[int, float]:
    number = float(value)
    return int(number) if number.is_integer() else number


def comma_list(value: Any) -> str:
    return value if isinstance(value, str) else ",".join(str(item) for item in value)


def as_list(value: Any) -> List[str]:
    return [value] if isinstance(value, str) else [str(item) for item in value]


def convert_bind(out: Conversion, name: str, value: Any) -> None:
    binds = []
    for address in as_list(value):
        if address.startswith("unix://"):
            address = "unix:" + address[len("unix://"):]
        elif not address.startswith(("unix:", "fd://")) and not address.rsplit("]", 1)[-1].count(":"):
            address += ":8000"  # gunicorn's port when none is given
        binds.append(address)
    out.options["bind"] = binds


def convert_worker_class(out: Conversion, name: str, value: Any) -> None:
    spelled = value if isinstance(value, str) else f"{value.__module__}.{value.__qualname__}"
    if spelled in UVICORN_WORKERS:
        out.note(name, f"{spelled}: arbiter's workers are uvicorn's, nothing to set")
    elif spelled.endswith("UvicornH11Worker"):
        out.options["http"] = "h11"
        out.note(name, f"{spelled}: uvicorn with its h11 parser, \"http\": \"h11\"")
    else:
        out.unmapped(name, f"'{spelled}' is not a uvicorn worker: arbiter serves ASGI apps with uvicorn only "
                     "(a WSGI app stays on gunicorn; an ASGI app drops worker_class)")


def convert_raw_env(out: Conversion, name: str, value: Any) -> None:
    out.options.setdefault("env", []).extend(as_list(value))


def convert_pythonpath(out: Conversion, name: str, value: Any) -> None:
    directories = ":".join(part.strip() for part in str(value).split(",") if part.strip())
    out.options.setdefault("env", []).append(f"PYTHONPATH={directories}")


def convert_accesslog(out: Conversion, name: str, value: Any) -> None:
    if value == "-":
        out.options["access-log"] = True
    else:
        out.options["access-log"] = True
        out.unmapped(name, f"{value}: arbiter writes access lines into its one log stream, not a file of their "
                     f"own: \"log-file\": \"{value}\" takes them with the rest, or let journald keep the stream")


def convert_errorlog(out: Conversion, name: str, value: Any) -> None:
    if value != "-":
        out.options["log-file"] = str(value)


def convert_loglevel(out: Conversion, name: str, value: Any) -> None:
    out.options["log-level"] = str(value).lower()


def convert_control_socket(out: Conversion, name: str, value: Any) -> None:
    out.options["control"] = str(value)
    out.note(name, "arbiter's control socket speaks `arbiter ctl` (status, scale, reload, stop), not gunicornc")


TLS = ("TLS belongs to the proxy in front (nginx, HAProxy: examples/); arbiter's workers serve plain HTTP on "
       "loopback or a unix socket")
HTTP2 = "uvicorn serves HTTP/1.1; HTTP/2 is the proxy's (nginx `http2 on;`), which speaks HTTP/1.1 to arbiter"
PARSER = "gunicorn's own HTTP parser; UvicornWorker used uvicorn's, so nothing changes"
UVICORN_IGNORED = "UvicornWorker ignored it, so nothing changes"
DIRTY = ("arbiter has no dirty arbiters: run the long tasks in a process of their own (a second arbiter, "
         "a task queue worker) under systemd")
LOGGING = ("arbiter writes the workers' output to its own log stream; --log-format json for structured lines, "
           "and the app's own logging config still applies inside each worker")
SYSLOG = "run under systemd: journald keeps arbiter's stream (or \"log-file\": PATH)"
STATSD = ("arbiter serves Prometheus metrics instead: \"metrics\": \"127.0.0.1:9100\" gives requests by status, "
          "durations, workers and the accept queue")

# gunicorn's documented settings (gunicorn/config.py), each: (gunicorn's default, conversion).
# UNSET as the default: any value is a change (defaults computed from the host).
SETTINGS: Dict[str, Tuple[Any, Convert]] = {
    "config": ("./gunicorn.conf.py", note("this file itself")),
    "wsgi_app": (None, note("the app goes on arbiter's command line: arbiter run --config arbiter.json APP")),
    "bind": (UNSET, convert_bind),
    "backlog": (2048, option("backlog", whole)),
    "workers": (UNSET, option("workers", whole)),
    "worker_class": ("sync", convert_worker_class),
    "threads": (1, note(UVICORN_IGNORED + " (one event loop per worker)")),
    "worker_connections": (1000, note(UVICORN_IGNORED + "; the nearest is \"limit-concurrency\": N")),
    "max_requests": (0, option("max-requests", whole)),
    "max_requests_jitter": (0, option("max-requests-jitter", whole)),
    "timeout": (30, option("timeout", seconds)),
    "graceful_timeout": (30, option("graceful-timeout", seconds)),
    "keepalive": (2, option("timeout-keep-alive", whole)),
    "limit_request_line": (4094, note(PARSER)),
    "limit_request_fields": (100, note(PARSER)),
    "limit_request_field_size": (8190, note(PARSER)),
    "reload": (False, unmapped("development only: deploy the code, then `arbiter ctl reload` (or SIGHUP) replaces "
                               "the workers with it, overlapped")),
    "reload_engine": ("auto", note("goes with reload")),
    "reload_extra_files": ([], note("goes with reload")),
    "spew": (False, unmapped("no line tracing in arbiter; run the app under a debugger in development")),
    "check_config": (False, note("`arbiter check APP` boots one worker through lifespan startup and exits 0 or 3")),
    "print_config": (False, note("`arbiter migrate` prints the configuration")),
    "preload_app": (False, flag("preload")),
    "sendfile": (None, note(UVICORN_IGNORED)),
    "reuse_port": (False, flag("reuse-port")),
    "chdir": (UNSET, option("chdir")),
    "daemon": (False, unmapped("arbiter does not daemonize: use systemd (Type=notify) or a container's "
                               "command")),
    "raw_env": ([], convert_raw_env),
    "pidfile": (None, option("pid")),
    "worker_tmp_dir": (None, note("arbiter's heartbeat goes over each worker's channel and needs no file")),
    "user": (UNSET, option("user")),
    "group": (UNSET, option("group")),
    "umask": (0, unmapped("systemd's UMask= in the unit (arbiter keeps the umask it is started with)")),
    "initgroups": (False, note("arbiter's --user always sets the user's supplementary groups")),
    "tmp_upload_dir": (None, note(UVICORN_IGNORED)),
    "secure_scheme_headers": (UNSET, note("uvicorn trusts X-Forwarded-Proto from \"forwarded-allow-ips\"")),
    "forwarded_allow_ips": ("127.0.0.1,::1", option("forwarded-allow-ips", comma_list)),
    "accesslog": (None, convert_accesslog),
    "disable_redirect_access_to_syslog": (False, note("goes with syslog")),
    "access_log_format": ('%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
                          unmapped("arbiter logs uvicorn's access line (client, request line, status); its format "
                                   "is not configurable yet")),
    "errorlog": ("-", convert_errorlog),
    "loglevel": ("info", convert_loglevel),
    "capture_output": (False, note("arbiter always takes the workers' stdout and stderr into its log")),
    "logger_class": ("gunicorn.glogging.Logger", unmapped(LOGGING)),
    "logconfig": (None, unmapped(LOGGING)),
    "logconfig_dict": ({}, unmapped(LOGGING)),
    "logconfig_json": (None, unmapped(LOGGING)),
    "syslog_addr": ("unix:///var/run/syslog", note("goes with syslog")),
    "syslog": (False, unmapped(SYSLOG)),
    "syslog_prefix": (None, note("goes with syslog")),
    "syslog_facility": ("user", note("goes with syslog")),
    "enable_stdio_inheritance": (False, note("the workers' stdout and stderr always reach arbiter's log")),
    "statsd_host": (None, unmapped(STATSD)),
    "dogstatsd_tags": ("", note("goes with statsd_host")),
    "statsd_prefix": ("", note("goes with statsd_host")),
    "enable_backlog_metric": (False, note("arbiter's /metrics always has arbiter_listen_queue_length")),
    "proc_name": (None, option("name")),
    "default_proc_name": ("gunicorn", note("arbiter's default name is arbiter")),
    "pythonpath": (None, convert_pythonpath),
    "paste": (None, unmapped("PasteDeploy apps are WSGI: they stay on gunicorn")),
    "raw_paste_global_conf": ([], note("goes with paste")),
    "proxy_protocol": ("off", unmapped("uvicorn has no PROXY protocol: let the proxy send X-Forwarded-For and "
                                       "set \"forwarded-allow-ips\"")),
    "proxy_allow_ips": ("127.0.0.1,::1", note("goes with proxy_protocol")),
    "protocol": ("http", unmapped("arbiter serves HTTP only (no uwsgi protocol): nginx proxy_pass instead of "
                                  "uwsgi_pass")),
    "uwsgi_allow_ips": ("127.0.0.1,::1", note("goes with protocol")),
    "keyfile": (None, unmapped(TLS)),
    "certfile": (None, unmapped(TLS)),
    "ssl_version": (UNSET, note("goes with certfile")),
    "cert_reqs": (0, note("goes with certfile")),
    "ca_certs": (None, note("goes with certfile")),
    "suppress_ragged_eofs": (True, note("goes with certfile")),
    "do_handshake_on_connect": (False, note("goes with certfile")),
    "ciphers": (None, note("goes with certfile")),
    "http_protocols": ("h1", unmapped(HTTP2)),
    "http2_cleartext": ("off", unmapped(HTTP2)),
    "http2_max_concurrent_streams": (100, note("goes with http_protocols")),
    "http2_initial_window_size": (65535, note("goes with http_protocols")),
    "http2_max_frame_size": (16384, note("goes with http_protocols")),
    "http2_max_header_list_size": (65536, note("goes with http_protocols")),
    "permit_obsolete_folding": (False, note(PARSER)),
    "strip_header_spaces": (False, note(PARSER)),
    "permit_unconventional_http_method": (False, note(PARSER)),
    "permit_unconventional_http_version": (False, note(PARSER)),
    "casefold_http_method": (False, note(PARSER)),
    "forwarder_headers": ("SCRIPT_NAME,PATH_INFO", note(PARSER)),
    "header_map": ("drop", note(PARSER)),
    "asgi_loop": ("auto", option("loop")),
    "asgi_lifespan": ("auto", option("lifespan")),
    "asgi_disconnect_grace_period": (3, note("gunicorn's asgi worker only; uvicorn cancels nothing on disconnect")),
    "http_parser": ("auto", note("gunicorn's asgi worker only; arbiter's is \"http\": \"auto|h11|httptools\"")),
    "root_path": ("", option("root-path")),
    "dirty_apps": ([], unmapped(DIRTY)),
    "dirty_workers": (0, unmapped(DIRTY)),
    "dirty_timeout": (300, note("goes with dirty_workers")),
    "dirty_threads": (1, note("goes with dirty_workers")),
    "dirty_graceful_timeout": (30, note("goes with dirty_workers")),
    "control_socket": (UNSET, convert_control_socket),
    "control_socket_mode": (0o600, unmapped("arbiter authorises by the peer's uid: its own and root may do "
                                            "everything; \"control-group\": GROUP may read status")),
    "control_socket_disable": (False, note("arbiter's control socket is always on; only its owner and root may "
                                           "change anything")),
}

LIFESPAN = ("use lifespan startup (runs in each worker before it serves: pools, clients, OpenTelemetry), or "
            "os.register_at_fork(after_in_child=...) for what must follow a fork under --preload")
HOOKS: Dict[str, str] = {
    "on_starting": "use systemd's ExecStartPre= in the unit (runs before arbiter starts)",
    "on_reload": "use lifespan startup in the new workers: arbiter runs no Python of yours on a reload",
    "when_ready": "use systemd's Type=notify (arbiter sends READY=1 once the workers are ready) and ExecStartPost=",
    "pre_fork": "use lifespan startup in the worker: nothing of yours runs in the arbiter before a fork",
    "post_fork": LIFESPAN,
    "post_worker_init": LIFESPAN,
    "worker_int": "use lifespan shutdown: arbiter drains and stops the worker itself",
    "worker_abort": "nothing to write: arbiter already logs the hung worker's Python stack (faulthandler) before "
                    "it kills it",
    "pre_exec": "nothing runs there: `arbiter ctl upgrade` re-executes the arbiter with no Python of yours in it",
    "pre_request": "use an ASGI middleware in the app",
    "post_request": "use an ASGI middleware in the app",
    "child_exit": ("for prometheus_client's mark_process_dead: arbiter's own /metrics (\"metrics\": ADDR) counts "
                   "requests by status and their durations with no code; --app-metrics, which will manage "
                   "PROMETHEUS_MULTIPROC_DIR, is not built yet, so a multiprocess setup must clear a dead "
                   "worker's files itself"),
    "worker_exit": "use lifespan shutdown in the worker",
    "nworkers_changed": "read `arbiter ctl status --json` or the arbiter_workers metric",
    "on_exit": "use systemd's ExecStopPost= in the unit",
    "ssl_context": "terminate TLS at the proxy in front (nginx, HAProxy: examples/)",
    "on_dirty_starting": DIRTY,
    "dirty_post_fork": DIRTY,
    "dirty_worker_init": DIRTY,
    "dirty_worker_exit": DIRTY,
}


def same_as_default(value: Any, default: Any) -> bool:
    if default is UNSET:
        return False
    try:
        return bool(value == default)
    except Exception:
        return False


def convert(namespace: Dict[str, Any]) -> Conversion:
    out = Conversion()
    # gunicorn reads the file's globals whose names are settings (it lowercases them) and ignores the rest.
    for raw_name, value in namespace.items():
        name = raw_name.lower()
        if raw_name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if name in HOOKS:
            if callable(value):
                out.unmapped(name, f"hook: {HOOKS[name]}")
            continue
        if name not in SETTINGS:
            defined_here = getattr(value, "__module__", None) == "__config__"
            if callable(value) and not defined_here:
                continue  # an import: `from multiprocessing import cpu_count`
            what = "a function of this file" if callable(value) else f"{raw_name} = {value!r:.60}"
            out.warning(raw_name, f"{what} is no gunicorn setting or hook: gunicorn ignored it (a typo?), "
                        "arbiter ignores it too")
            continue
        default, setting = SETTINGS[name]
        if same_as_default(value, default):
            continue
        try:
            setting(out, name, value)
        except (TypeError, ValueError) as error:
            out.unmapped(name, f"{value!r:.60} is not a value gunicorn accepts here ({error})")
    if "accesslog" not in {key.lower() for key in namespace}:
        out.options["access-log"] = False
        out.note("accesslog", "unset: gunicorn logs no requests, so \"access-log\": false keeps it so "
                 "(drop it to have arbiter's access log)")
    return out


def evaluate(path: str) -> Dict[str, Any]:
    """Runs the file as gunicorn's load_config_from_file does and returns its globals."""
    if not os.path.isfile(path):
        raise OSError("no such file")
    spec = importlib.util.spec_from_file_location("__config__", path)
    if spec is None or spec.loader is None:
        raise OSError("cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules["__config__"] = module
    spec.loader.exec_module(module)
    return vars(module)


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m arbiter_worker.gunicorn_config GUNICORN_CONF_PY", file=sys.stderr)
        return 2
    path = args[0]
    result = os.dup(1)
    os.dup2(2, 1)  # the file's own prints, even os.write(1, ...), go to stderr
    try:
        namespace = evaluate(path)
    except SyntaxError as error:
        print(f"{path}:{error.lineno}: syntax error: {error.msg}; fix the file (python -m py_compile {path})",
              file=sys.stderr)
        return 2
    except OSError as error:
        print(f"{path}: cannot read it: {error.strerror or error}", file=sys.stderr)
        return 2
    except BaseException as error:  # the file raised: show where, as gunicorn would
        traceback.print_exc()
        print(f"{path}: raised {type(error).__name__} while evaluated; fix the file", file=sys.stderr)
        return 2
    conversion = convert(namespace)
    with os.fdopen(result, "w") as out:
        json.dump({"options": conversion.options, "lines": conversion.lines}, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
