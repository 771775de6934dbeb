"""Observability: --metrics (/metrics, /healthz), per-worker stats in `ctl status`, --log-format json.

A real Prometheus (Debian's `prometheus` package) scrapes the arbiter on loopback; the metrics
listener is also attacked directly with raw sockets (garbage, huge headers, a slow client, many
connections), and after each the app and /metrics must still answer.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Optional

import httpx
import pytest

from conftest import ARBITER_BIN, Arbiter, free_port, wait_until

PROMETHEUS = shutil.which("prometheus") or ("/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None)


# --------------------------------------------------------------------------------------------------
# Helpers


def ctl(arbiter, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(ARBITER_BIN), "ctl", "--control", str(arbiter.control_path), *command],
                          capture_output=True, text=True, timeout=timeout)


def ctl_status(arbiter) -> dict:
    result = ctl(arbiter, "--json", "status")
    assert result.returncode == 0, f"ctl status failed: {result.stderr}"
    return json.loads(result.stdout)


def run_with_metrics(arbiter, workers: int = 1, extra=(), **kwargs) -> str:
    """Start the arbiter with --metrics on a free loopback port; returns that HOST:PORT."""
    address = f"127.0.0.1:{free_port()}"
    arbiter.run(workers=workers, extra=["--metrics", address, *extra], **kwargs)
    arbiter.metrics_address = address
    return address


def metrics_get(address: str, path: str, timeout: float = 5.0) -> httpx.Response:
    with httpx.Client(base_url=f"http://{address}", timeout=timeout) as client:
        return client.get(path)


def healthz(address: str) -> tuple[int, str]:
    response = metrics_get(address, "/healthz", timeout=2.0)
    return response.status_code, response.text


def try_healthz(address: str) -> Optional[tuple[int, str]]:
    try:
        return healthz(address)
    except httpx.HTTPError:
        return None


def metric_value(page: str, series: str) -> Optional[float]:
    """The value of one series (`name` or `name{labels}`) in a /metrics page."""
    for line in page.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def raw_exchange(address: str, data: bytes, timeout: float = 10.0) -> bytes:
    """Send data on a fresh connection and read until the server closes it; b"" if it closed
    (or reset) without answering."""
    host, port = address.rsplit(":", 1)
    received = b""
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed on us mid-send: it may still have answered first
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                raise AssertionError(f"no answer and no close within {timeout}s after sending {data[:60]!r}") from None
            if not chunk:
                break
            received += chunk
    return received


def status_code_of(response: bytes) -> Optional[int]:
    if not response:
        return None
    first = response.split(b"\r\n", 1)[0].split()
    assert len(first) >= 2 and first[0].startswith(b"HTTP/1."), f"not an HTTP response: {response[:120]!r}"
    return int(first[1])


def assert_node_still_serves(arbiter) -> None:
    """The app answers and /metrics answers: whatever the metrics listener went through did not hurt."""
    assert arbiter.running(), f"the arbiter exited:\n{arbiter.tail()}"
    assert arbiter.get("/").status_code == 200
    page = metrics_get(arbiter.metrics_address, "/metrics")
    assert page.status_code == 200
    assert metric_value(page.text, 'arbiter_workers{state="ready"}') is not None


# --------------------------------------------------------------------------------------------------
# A real Prometheus


class Prometheus:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir / "prometheus"
        self.workdir.mkdir()
        self.address = f"127.0.0.1:{free_port()}"
        self.proc: Optional[subprocess.Popen] = None

    def start(self, target: str) -> None:
        config = self.workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: arbiter\n    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        self.log = open(self.workdir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address={self.address}", "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.workdir,
            start_new_session=True,
        )

        def ready():
            assert self.proc.poll() is None, f"prometheus exited with {self.proc.returncode}:\n{self.output()}"
            try:
                return httpx.get(f"http://{self.address}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        wait_until(ready, 60, f"prometheus ready on {self.address}", interval=0.2)

    def query(self, expression: str) -> list:
        response = httpx.get(f"http://{self.address}/api/v1/query", params={"query": expression}, timeout=5)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def scalar(self, expression: str) -> Optional[float]:
        result = self.query(expression)
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def output(self) -> str:
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def prometheus(workdir):
    if PROMETHEUS is None:
        # A failure, not a skip: a skip would hide a missing install step.
        pytest.fail("the prometheus binary is not installed (Debian package `prometheus`; scripts/test.sh's install stage installs it)")
    instance = Prometheus(workdir)
    yield instance
    instance.stop()
    print(f"--- prometheus output:\n{instance.output()}")


def test_prometheus_scrapes_the_arbiter_and_sees_the_ready_workers_after_a_scale(arbiter, prometheus):
    target = run_with_metrics(arbiter, workers=1)
    arbiter.wait_ready(1)
    prometheus.start(target)

    wait_until(lambda: prometheus.scalar('up{job="arbiter"}') == 1, 30,
               "prometheus scrapes the arbiter successfully (up == 1)", interval=0.5)
    wait_until(lambda: prometheus.scalar('arbiter_workers{state="ready"}') == 1, 30,
               "prometheus sees 1 ready worker", interval=0.5)

    result = ctl(arbiter, "scale", "3")
    assert result.returncode == 0, result.stderr
    arbiter.wait_ready(3)

    value = wait_until(lambda: prometheus.scalar('arbiter_workers{state="ready"}') == 3, 30,
                       'query arbiter_workers{state="ready"} returns 3', interval=0.5)
    assert value
    assert prometheus.scalar("arbiter_target_workers") == 3
    # Prometheus parsed every family without complaint: the scrape reports no dropped samples.
    assert prometheus.scalar('scrape_samples_scraped{job="arbiter"}') > 20


# --------------------------------------------------------------------------------------------------
# /healthz


def test_healthz_is_200_with_the_ready_count_while_serving(arbiter):
    address = run_with_metrics(arbiter, workers=2)
    arbiter.wait_ready(2)
    code, text = wait_until(lambda: (r := try_healthz(address)) and r[0] == 200 and r, 10, "healthz 200")
    assert "2/2" in text


def test_livez_is_200_while_serving_and_while_draining(arbiter, workdir):
    address = run_with_metrics(arbiter, workers=1, extra=["--graceful-timeout", "20"])
    arbiter.wait_ready(1)
    assert metrics_get(address, "/livez").status_code == 200

    marker = workdir / "slow-started"
    thread = threading.Thread(target=lambda: arbiter.get(f"/slow?s=3&started={marker}", timeout=30))
    thread.start()
    try:
        wait_until(marker.exists, 10, "the slow request to be inside the handler")
        arbiter.signal(signal.SIGTERM)
        wait_until(lambda: (r := try_healthz(address)) and r[0] == 503, 2, "healthz 503 after SIGTERM")
        during_drain = metrics_get(address, "/livez")
        assert thread.is_alive(), "the slow request should still be in flight"
    finally:
        thread.join(timeout=30)
    assert (during_drain.status_code, during_drain.text) == (200, "alive\n")


def test_healthz_turns_503_at_term_while_a_slow_request_is_still_served(arbiter, workdir):
    address = run_with_metrics(arbiter, workers=1, extra=["--graceful-timeout", "20"])
    arbiter.wait_ready(1)
    assert healthz(address)[0] == 200

    marker = workdir / "slow-started"
    outcome: dict = {}

    def slow_request():
        try:
            outcome["response"] = arbiter.get(f"/slow?s=3&started={marker}", timeout=30)
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = exc
    thread = threading.Thread(target=slow_request)
    thread.start()
    try:
        wait_until(marker.exists, 10, "the slow request to be inside the handler")
        arbiter.signal(signal.SIGTERM)
        signalled = time.monotonic()

        code, text = wait_until(lambda: (r := try_healthz(address)) and r[0] == 503 and r, 1.0,
                                "healthz 503 within 1 s of SIGTERM")
        assert "stopping" in text
        assert thread.is_alive(), "the slow request should still be in flight when healthz says 503"
        # /metrics keeps answering during the drain and says so.
        page = metrics_get(address, "/metrics").text
        assert metric_value(page, "arbiter_stopping") == 1
    finally:
        thread.join(timeout=30)
    assert "error" not in outcome, f"the slow request failed: {outcome.get('error')!r}"
    assert outcome["response"].status_code == 200
    assert outcome["response"].json()["slept"] == 3
    assert arbiter.wait_exit(30) == 0


def test_workers_draining_for_a_stop_are_counted_as_draining(arbiter, workdir):
    address = run_with_metrics(arbiter, workers=1, extra=["--graceful-timeout", "20"])
    arbiter.wait_ready(1)
    marker = workdir / "slow-started"
    thread = threading.Thread(target=lambda: arbiter.get(f"/slow?s=3&started={marker}", timeout=30))
    thread.start()
    try:
        wait_until(marker.exists, 10, "the slow request to be inside the handler")
        arbiter.signal(signal.SIGTERM)
        wait_until(lambda: (r := try_healthz(address)) and r[0] == 503, 1.0, "healthz 503 after SIGTERM")
        page = metrics_get(address, "/metrics").text
        assert thread.is_alive(), "the drain ended before the scrape; the check below would prove nothing"
        counts = {state: metric_value(page, f'arbiter_workers{{state="{state}"}}') for state in ("booting", "draining")}
        assert counts == {"booting": 0, "draining": 1}, counts
    finally:
        thread.join(timeout=30)


def test_workers_replaced_by_a_reload_are_counted_as_draining(arbiter, workdir):
    address = run_with_metrics(arbiter, workers=1, extra=["--graceful-timeout", "30"])
    arbiter.wait_ready(1)
    marker = workdir / "slow-started"
    thread = threading.Thread(target=lambda: arbiter.get(f"/slow?s=8&started={marker}", timeout=40))
    thread.start()
    try:
        wait_until(marker.exists, 10, "the slow request to be inside the handler")
        assert ctl(arbiter, "--no-wait", "reload").returncode == 0

        def draining_counted():
            page = metrics_get(address, "/metrics").text
            counts = {state: metric_value(page, f'arbiter_workers{{state="{state}"}}') for state in ("ready", "draining")}
            return counts if counts["draining"] == 1 else None
        counts = wait_until(draining_counted, 20, "the replaced worker to show as draining")
        assert thread.is_alive(), "the old worker finished its request before the scrape: nothing was shown"
        assert counts == {"ready": 1, "draining": 1}, counts
    finally:
        thread.join(timeout=40)


def test_metrics_unix_path_that_is_a_regular_file_is_refused_and_left_alone(arbiter, workdir):
    path = workdir / "precious.txt"
    path.write_text("not yours\n")
    arbiter.run(workers=1, extra=["--metrics", f"unix:{path}"])

    assert arbiter.wait_exit(20) == 2
    assert "the path exists and is not a socket" in arbiter.output()
    assert path.read_text() == "not yours\n"


def test_metrics_unix_path_of_a_live_socket_is_refused_and_left_alone(arbiter, workdir):
    path = workdir / "live.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(str(path))
        live.listen(1)
        arbiter.run(workers=1, extra=["--metrics", f"unix:{path}"])

        assert arbiter.wait_exit(20) == 2
        assert "another process is serving on this socket" in arbiter.output()
        assert path.is_socket()


def test_metrics_unix_stale_socket_is_replaced_and_removed_at_exit(arbiter, workdir):
    path = workdir / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # bound, never unlinked: what a killed process leaves behind
    arbiter.run(workers=1, extra=["--metrics", f"unix:{path}"])
    arbiter.wait_ready(1)

    transport = httpx.HTTPTransport(uds=str(path))
    with httpx.Client(transport=transport, base_url="http://metrics", timeout=5) as client:
        assert client.get("/healthz").status_code == 200
    arbiter.signal(signal.SIGTERM)
    assert arbiter.wait_exit(30) == 0
    assert not path.exists()


def test_healthz_is_503_with_a_reason_while_fewer_than_min_ready_workers_are_ready(arbiter):
    address = run_with_metrics(arbiter, workers=2, extra=["--min-ready", "2"])
    arbiter.wait_ready(2)
    wait_until(lambda: (r := try_healthz(address)) and r[0] == 200, 10, "healthz 200 with 2 of 2 ready")

    assert ctl(arbiter, "scale", "1").returncode == 0
    code, text = wait_until(lambda: (r := try_healthz(address)) and r[0] == 503 and r, 15,
                            "healthz 503 with 1 ready and --min-ready 2")
    assert "1/1" in text and "min-ready 2" in text, text

    assert ctl(arbiter, "scale", "2").returncode == 0
    wait_until(lambda: (r := try_healthz(address)) and r[0] == 200, 30, "healthz 200 again with 2 ready")


def test_healthz_is_503_while_the_only_worker_is_still_booting(arbiter):
    address = run_with_metrics(arbiter, workers=1, app="slow_boot:app", env={"SLOW_BOOT_SECONDS": "4"},
                               extra=["--boot-timeout", "30"])
    code, text = wait_until(lambda: try_healthz(address), 10, "the metrics listener to answer")
    assert code == 503, text
    assert "0/1" in text and "min-ready" in text, text
    wait_until(lambda: (r := try_healthz(address)) and r[0] == 200, 30, "healthz 200 once the worker is ready")


# --------------------------------------------------------------------------------------------------
# Hostile or odd clients of the metrics listener


@pytest.fixture
def node(arbiter):
    run_with_metrics(arbiter, workers=1)
    arbiter.wait_ready(1)
    return arbiter


GARBAGE = {
    "binary": bytes((i * 37 + 11) % 255 + 1 for i in range(300)) + b"\r\n\r\n",  # no NUL, with CRLFs
    "control_bytes": b"\x00\xff\x13garbage \x7f\r\n\r\n",  # a NUL first: never a complete request
    "tls_client_hello": bytes.fromhex("160301020001 0001fc0303".replace(" ", "")) + bytes(range(200)),
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_metrics_listener_answers_garbage_with_an_error_or_closes_within_its_timeout(node, kind):
    started = time.monotonic()
    response = raw_exchange(node.metrics_address, GARBAGE[kind])
    code = status_code_of(response)
    assert code is None or 400 <= code < 500, f"garbage got {code}"
    assert time.monotonic() - started < 7.0, "garbage held the connection beyond the ~5 s client timeout"
    assert_node_still_serves(node)


def test_metrics_listener_answers_a_request_line_without_http_version_with_400_or_closes(node):
    response = raw_exchange(node.metrics_address, b"GET\r\n\r\n")
    assert status_code_of(response) in (400, None)
    assert_node_still_serves(node)


def test_metrics_listener_answers_headers_over_8_kib_with_431_or_closes(node):
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    response = raw_exchange(node.metrics_address, request)
    assert status_code_of(response) in (431, None)
    assert_node_still_serves(node)


def test_metrics_listener_drops_a_client_sending_one_byte_every_half_second(node):
    host, port = node.metrics_address.rsplit(":", 1)
    trickle = b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 100  # never finishes its headers
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.setblocking(False)
        connected = time.monotonic()
        dropped_after = None
        for byte in trickle[:30]:  # 30 bytes, 0.5 s apart: 15 s at most
            try:
                sock.send(bytes([byte]))
                if sock.recv(4096) == b"":
                    dropped_after = time.monotonic() - connected
                    break
            except BlockingIOError:
                pass  # nothing to read yet: still connected
            except (BrokenPipeError, ConnectionResetError):
                dropped_after = time.monotonic() - connected
                break
            time.sleep(0.5)  # the pace of the slow client under test, not a wait for a condition
    assert dropped_after is not None, "a client trickling one byte per 0.5 s was never dropped"
    assert dropped_after < 7.0, f"the slow client was dropped only after {dropped_after:.1f}s (limit ~5 s)"
    assert_node_still_serves(node)


def test_metrics_listener_drops_a_silent_client_within_its_timeout(node):
    host, port = node.metrics_address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        started = time.monotonic()
        try:
            assert sock.recv(4096) == b""
        except ConnectionResetError:
            pass
        assert time.monotonic() - started < 7.0
    assert_node_still_serves(node)


def test_metrics_listener_survives_200_connections_at_once(node):
    host, port = node.metrics_address.rsplit(":", 1)
    sockets = []
    try:
        for _ in range(200):
            sock = socket.create_connection((host, int(port)), timeout=10)
            sockets.append(sock)
        # The app serves while the metrics listener holds (or has dropped) 200 connections.
        assert node.get("/").status_code == 200
        answered = dropped = 0
        for sock in sockets:
            try:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                dropped += 1
                continue
            received = b""
            try:
                while chunk := sock.recv(4096):
                    received += chunk
            except ConnectionResetError:
                pass
            except socket.timeout:
                raise AssertionError("a connection got neither an answer nor a close within 10 s") from None
            if received:
                assert status_code_of(received) == 200, received[:200]
                answered += 1
            else:
                dropped += 1
        print(f"200 connections: {answered} answered, {dropped} dropped")
        assert answered + dropped == 200
        assert answered >= 1
    finally:
        for sock in sockets:
            sock.close()
    assert_node_still_serves(node)


def test_idle_connections_do_not_starve_the_health_check(node):
    host, port = node.metrics_address.rsplit(":", 1)
    idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(64)]
    try:
        assert try_healthz(node.metrics_address) is not None, "/healthz did not answer while 64 idle connections were open"
    finally:
        for sock in idle:
            sock.close()


def test_metrics_listener_answers_post_with_405(node):
    response = raw_exchange(node.metrics_address,
                            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert status_code_of(response) == 405
    assert_node_still_serves(node)


def test_metrics_listener_answers_an_unknown_path_with_404(node):
    response = metrics_get(node.metrics_address, "/nope")
    assert response.status_code == 404
    assert_node_still_serves(node)


def test_metrics_listener_answers_head_with_headers_only(node):
    response = raw_exchange(node.metrics_address, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_code_of(response) == 200
    assert response.endswith(b"\r\n\r\n"), "HEAD must not carry a body"
    assert_node_still_serves(node)


def test_metrics_page_is_served_with_the_prometheus_text_content_type(node):
    response = metrics_get(node.metrics_address, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert metric_value(response.text, "arbiter_target_workers") == 1
    assert metric_value(response.text, 'arbiter_workers{state="ready"}') == 1


# --------------------------------------------------------------------------------------------------
# Per-worker stats and JSON logs


def test_ctl_status_json_has_requests_memory_and_cpu_for_each_worker(arbiter):
    address = run_with_metrics(arbiter, workers=2, extra=["--timeout", "2"])  # heartbeats every 0.5 s
    arbiter.wait_ready(2)
    requests = 20
    for _ in range(requests):
        assert arbiter.get("/").status_code == 200

    def counted():
        status = ctl_status(arbiter)
        return status if sum(w["requests"] for w in status["workers"]) >= requests else None
    status = wait_until(counted, 10, f"ctl status to count {requests} requests from the heartbeats", interval=0.2)

    assert len(status["workers"]) == 2
    for worker in status["workers"]:
        for field in ("requests", "in_flight", "memory_rss_bytes", "memory_pss_bytes", "restarts"):
            assert isinstance(worker[field], int), (field, worker)
        assert worker["in_flight"] == 0
        assert worker["memory_rss_bytes"] > 1 << 20, worker
        assert worker["memory_pss_bytes"] > 1 << 20, worker
        assert isinstance(worker["cpu_seconds"], float) and worker["cpu_seconds"] > 0, worker
        assert worker["uptime_s"] > 0, worker
        assert "last_exit" in worker
    # /metrics agrees with status: both read the same heartbeats.
    page = metrics_get(address, "/metrics").text
    assert metric_value(page, "arbiter_requests_total") >= requests


def test_json_log_format_gives_one_json_object_per_arbiter_event(arbiter):
    run_with_metrics(arbiter, workers=2, extra=["--log-format", "json"])
    arbiter.wait_ready(2)
    for _ in range(5):
        assert arbiter.get("/").status_code == 200
    arbiter.signal(signal.SIGTERM)
    assert arbiter.wait_exit(30) == 0

    arbiter_lines, worker_lines = [], []
    for number, line in enumerate(arbiter.output().splitlines(), 1):
        if not line.strip():
            continue
        assert not line.startswith("[worker"), f"line {number} is a text-format worker line in json mode: {line}"
        try:
            entry = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from None
        assert isinstance(entry, dict), f"line {number} is not a JSON object: {line!r}"
        (arbiter_lines if "event" in entry else worker_lines).append(entry)

    assert arbiter_lines, "no arbiter events were logged"
    for entry in arbiter_lines:
        for key in ("ts", "level", "event", "message"):
            assert isinstance(entry.get(key), str) and entry[key], (key, entry)
        assert entry["level"] in ("debug", "info", "warning", "error", "critical"), entry
        assert entry["arbiter_pid"] == arbiter.pid, entry
        datetime.datetime.fromisoformat(entry["ts"].replace("Z", "+00:00"))
    events = [entry["event"] for entry in arbiter_lines]
    for expected in ("starting", "worker_ready", "stopping", "stopped"):
        assert expected in events, f"no {expected!r} event in {events}"
    ready = next(entry for entry in arbiter_lines if entry["event"] == "worker_ready")
    assert isinstance(ready.get("worker"), int) and isinstance(ready.get("pid"), int), ready

    # The workers' own lines (uvicorn's and the shim's) are JSON too, and say which worker wrote them.
    assert worker_lines, "the workers logged nothing (uvicorn logs its startup)"
    for entry in worker_lines:
        for key in ("ts", "level", "logger", "worker", "pid", "message"):
            assert key in entry, (key, entry)
        assert entry["pid"] != arbiter.pid


# --------------------------------------------------------------------------------------------------
# The examples stay valid against the real Prometheus tools

PROMTOOL = shutil.which("promtool") or ("/usr/bin/promtool" if os.access("/usr/bin/promtool", os.X_OK) else None)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def promtool_installed():
    if PROMTOOL is None:
        pytest.fail("promtool is not installed (Debian package `prometheus`; scripts/test.sh's install stage installs it)")


needs_promtool = pytest.mark.usefixtures("promtool_installed")


@needs_promtool
def test_example_prometheus_config_is_valid():
    result = subprocess.run([PROMTOOL, "check", "config", str(EXAMPLES / "prometheus" / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_example_grafana_dashboard_queries_are_valid_promql_on_arbiter_metrics(workdir):
    dashboard = json.loads((EXAMPLES / "grafana" / "arbiter-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert expressions
    # Grafana's variables, as Grafana would substitute them.
    concrete = [e.replace("$__rate_interval", "1m").replace("$instance", ".*") for e in expressions]
    metric_names = {line.split()[2] for line in metrics_families_of_this_build(workdir)}
    for expression in concrete:
        used = set(re.findall(r"\barbiter_[a-z_]+", expression))
        assert used and used <= metric_names, f"{expression} uses {used - metric_names or 'no'} metric(s) the arbiter does not export"
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query{i}", "expr": e}
                                                         for i, e in enumerate(concrete)]}]}
    path = workdir / "dashboard-rules.json"  # YAML is a superset of JSON
    path.write_text(json.dumps(rules))
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def metrics_families_of_this_build(workdir) -> list[str]:
    """The `# TYPE` lines of a /metrics page rendered by the binary under test."""
    node = Arbiter(workdir)
    try:
        run_with_metrics(node, workers=1)
        node.wait_ready(1)
        page = metrics_get(node.metrics_address, "/metrics").text
    finally:
        node.kill_everything()
    return [line for line in page.splitlines() if line.startswith("# TYPE ")]
