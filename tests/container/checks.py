#!/usr/bin/python3
"""The container image, run as a container runtime runs it: the root built from
packaging/container/Containerfile by packaging/container/rootfs.py, started with systemd-nspawn
without --boot (its ENTRYPOINT, arbiter, is the container's PID 1), in a network namespace of its
own (only its loopback; the clients enter it with nsenter).

    tests/container/checks.py IMAGE_DIR      # run by tests/container/run.sh after the build

Each check prints PASS or FAIL with the reason; figures print as "figure: ..." lines (also written
to $ARBITER_CONTAINER_OUT/figures.txt); the last line is "N passed, N failed". Every wait is a
poll with a deadline. Containers are stopped (SIGKILL to nspawn, by pid) when a check ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Optional, TypeVar

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "packaging" / "container"))
import rootfs  # noqa: E402  (the builder's own run_command: the tests run what users run)

OUT = Path(os.environ.get("ARBITER_CONTAINER_OUT", REPO / ".cache" / "container-test"))
PROBE_APP = REPO / "tests" / "container" / "app"
CLIENT = REPO / "tests" / "container" / "client.py"
APP_PORT, METRICS_PORT = 8000, 9100  # the image's ENTRYPOINT binds these
T = TypeVar("T")
STARTED: list["Container"] = []  # every container a check started, for the last check


def wait_until(predicate: Callable[[], T], timeout: float, message: str, interval: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")
        time.sleep(interval)


def figure(text: str) -> None:
    print(f"figure: {text}", flush=True)
    with open(OUT / "figures.txt", "a") as figures:
        figures.write(text + "\n")


class Container:
    """One `docker run`: the image's ENTRYPOINT with ARGS (or its CMD) as PID 1."""

    def __init__(self, image: Path, name: str, args: list[str], binds: tuple[str, ...] = ()) -> None:
        self.config = json.loads((image / "config.json").read_text())
        self.root = (image / "rootfs").resolve()
        self.name = name
        self.stdout_path, self.stderr_path = OUT / f"{name}.stdout", OUT / f"{name}.stderr"
        command = rootfs.run_command(image, args, "private", list(binds), [])
        (OUT / f"{name}.command").write_text(" ".join(command) + "\n")
        with open(self.stdout_path, "wb") as stdout, open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
        STARTED.append(self)
        self.init_pid = wait_until(self.find_init, 30, "the container's PID 1 to start")
        self.uid, self.gid = self.image_user()

    def find_init(self) -> Optional[int]:
        """The host pid of the container's PID 1: nspawn's child in another pid namespace."""
        if self.process.poll() is not None:
            raise AssertionError(f"systemd-nspawn exited {self.process.returncode}: {self.stderr()[-2000:]}")
        own = os.readlink("/proc/self/ns/pid")
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
                if ppid == self.process.pid and os.readlink(f"/proc/{entry}/ns/pid") != own:
                    return int(entry)
            except (OSError, ValueError, IndexError):
                continue
        return None

    def image_user(self) -> tuple[int, int]:
        for line in (self.root / "etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == self.config["user"]:
                return int(fields[2]), int(fields[3])
        raise AssertionError(f"the image's USER {self.config['user']} is not in its /etc/passwd")

    def exec(self, argv: list[str], as_image_user: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run argv inside the container (all its namespaces, its root, the image's environment),
        as the image's USER by default, as `docker exec` does."""
        user = [f"--setuid={self.uid}", f"--setgid={self.gid}"] if as_image_user else []
        env = [f"{k}={v}" for k, v in self.config["env"].items()]
        return subprocess.run(
            ["nsenter", f"--target={self.init_pid}", "--mount", "--uts", "--ipc", "--net", "--pid", "--root",
             "--wd", *user, "--", "/usr/bin/env", "-i", *env,
             "HOME=/app", *argv], capture_output=True, text=True, timeout=timeout)

    def http(self, path: str, port: int = APP_PORT, timeout: float = 10) -> dict:
        """GET from inside the container's network namespace; {"status", "body"} or {"error"}."""
        result = subprocess.run(
            ["nsenter", f"--target={self.init_pid}", "--net", "--", sys.executable, str(CLIENT),
             f"http://127.0.0.1:{port}{path}", str(timeout)], capture_output=True, text=True, timeout=timeout + 10)
        return json.loads(result.stdout) if result.stdout.strip() else {"error": result.stderr[-500:]}

    def http_background(self, path: str, timeout: float = 60) -> subprocess.Popen:
        return subprocess.Popen(
            ["nsenter", f"--target={self.init_pid}", "--net", "--", sys.executable, str(CLIENT),
             f"http://127.0.0.1:{APP_PORT}{path}", str(timeout)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_serving(self, timeout: float = 90) -> dict:
        def answered() -> Optional[dict]:
            if self.process.poll() is not None:
                raise AssertionError(f"the container exited {self.process.returncode} before serving:\n{self.logs()[-3000:]}")
            reply = self.http("/", timeout=2)
            return reply if reply.get("status") == 200 else None
        return wait_until(answered, timeout, "the app to answer on port 8000")

    def proc_states(self) -> dict[int, tuple[str, int, str]]:
        """pid -> (state, ppid, comm) of every process in the container, read from its own /proc."""
        script = ("import os,json;r={}\nfor p in os.listdir('/proc'):\n if p.isdigit():\n  try:\n"
                  "   s=open('/proc/'+p+'/stat').read();c=s[s.index('(')+1:s.rindex(')')];f=s[s.rindex(')')+2:].split()\n"
                  "   r[p]=[f[0],int(f[1]),c]\n  except OSError: pass\nprint(json.dumps(r))")
        result = self.exec(["python3", "-c", script], as_image_user=False)
        assert result.returncode == 0, f"cannot list the container's processes: {result.stderr}"
        return {int(pid): (state, ppid, comm) for pid, (state, ppid, comm) in json.loads(result.stdout).items()}

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def logs(self) -> str:
        return f"--- stdout\n{self.stdout()}\n--- stderr\n{self.stderr()}"

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the container still runs after {timeout:.0f} s:\n{self.logs()[-3000:]}") from None

    def kill(self) -> None:
        """SIGKILL to the container's PID 1 ends its pid namespace, then nspawn exits. (Killing nspawn
        alone may leave the container running: its PID 1 lost nspawn's parent-death signal when it
        changed to the image's user.)"""
        if self.process.poll() is not None:
            return
        try:
            os.kill(self.init_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def probe_container(image: Path, name: str, *flags: str) -> Container:
    """The image with the probe app mounted in place of the example app."""
    container = Container(image, name, [*flags, "--chdir", "/srv/probe", "probe:app"],
                          binds=(f"{PROBE_APP}:/srv/probe",))
    container.wait_serving()
    return container


# --------------------------------------------------------------------------------------------------
# The checks (each starts its own container)


def check_arbiter_is_pid_1_and_serves_the_example_app_with_the_default_cmd(image: Path) -> None:
    container = Container(image, "default", [])
    try:
        reply = container.wait_serving()
        assert "hello from arbiter" in reply["body"], reply
        cmdline = container.exec(["cat", "/proc/1/cmdline"]).stdout.split("\0")[:-1]
        expected = [*container.config["entrypoint"], *container.config["cmd"]]
        assert cmdline == expected, f"PID 1 is {cmdline}, expected the ENTRYPOINT + CMD {expected}"
        with open(f"/proc/{container.init_pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status.read().splitlines())
        assert fields["NSpid"].split()[-1] == "1", f"not PID 1 in its namespace: NSpid {fields['NSpid']}"
        assert fields["Uid"].split()[0] == str(container.uid) != "0", f"PID 1 runs as uid {fields['Uid']}"
        health = container.http("/healthz", port=METRICS_PORT)
        assert health.get("status") == 200, health
    finally:
        container.kill()


def check_healthcheck_command_exits_0_while_serving(image: Path) -> None:
    container = Container(image, "healthcheck", [])
    try:
        container.wait_serving()
        test = container.config["healthcheck"]["test"]
        result = wait_until(lambda: (r := container.exec(test)).returncode == 0 and r, 30,
                            f"the HEALTHCHECK command {test} to exit 0")
        assert result.stdout.startswith("ok: "), result.stdout
    finally:
        container.kill()


def check_logs_go_to_stdout_and_stderr_stays_empty(image: Path) -> None:
    container = Container(image, "logs", [])
    try:
        container.wait_serving()
        wait_until(lambda: '"GET / HTTP/1.1" 200' in container.stdout(), 10, "the worker's access line on stdout")
        wait_until(lambda: "2 workers ready" in container.stdout(), 30, "the arbiter's 'workers ready' line on stdout")
        assert container.stderr() == "", f"stderr is not empty: {container.stderr()[-2000:]}"
    finally:
        container.kill()


def check_sigterm_to_pid_1_drains_a_request_in_flight_and_exits_0(image: Path) -> None:
    container = probe_container(image, "drain", "--log-format", "json", "--graceful-timeout", "30")
    try:
        marker = "/tmp/slow-started"
        slow = container.http_background(f"/slow?s=3&marker={marker}")
        wait_until(lambda: container.exec(["test", "-e", marker]).returncode == 0, 20,
                   "the slow request to be in its handler")
        os.kill(container.init_pid, signal.SIGTERM)
        signalled = time.monotonic()
        draining = wait_until(lambda: (r := container.exec(container.config["healthcheck"]["test"])).returncode != 0 and r,
                              5, "the HEALTHCHECK to fail once the drain began")
        live = container.exec(["arbiter", "ctl", "--timeout", "4", "health", "--live"])
        in_flight = slow.poll() is None
        answered: list[float] = []

        def container_exited() -> bool:
            if not answered and slow.poll() is not None:
                answered.append(time.monotonic())
            return container.process.poll() is not None
        wait_until(container_exited, 60, "the container to exit after SIGTERM", interval=0.01)
        exited = time.monotonic()
        code = container.process.returncode
        out, err = slow.communicate(timeout=30)
        reply = json.loads(out) if out.strip() else {"error": err}
        answered_at = answered[0] if answered else exited
        figure(f"container: SIGTERM to PID 1 -> exit {code} in {exited - signalled:.2f} s with a 3 s request in flight "
               f"(it was answered {answered_at - signalled:.2f} s after the signal, the container exited "
               f"{exited - answered_at:.2f} s after that)")
        assert in_flight, "the slow request had already finished when the drain was checked"
        assert "stopping" in draining.stderr, f"HEALTHCHECK during the drain: {draining.stderr}"
        assert live.returncode == 0, f"ctl health --live failed during the drain: {live.stderr}"
        assert reply.get("status") == 200 and json.loads(reply["body"])["slept"] == 3, reply
        assert code == 0, f"PID 1 exited {code}:\n{container.logs()[-3000:]}"
        lines = [line for line in container.stdout().splitlines() if line.strip()]
        assert lines and all(json.loads(line) for line in lines), "every stdout line is a JSON object"
    finally:
        container.kill()


def check_lame_duck_serves_new_requests_after_sigterm_then_exits_0(image: Path) -> None:
    # What a Kubernetes pod needs while the endpoint removal reaches every node: still accepting.
    container = probe_container(image, "lame-duck", "--lame-duck", "3")
    try:
        os.kill(container.init_pid, signal.SIGTERM)
        signalled = time.monotonic()
        wait_until(lambda: container.exec(container.config["healthcheck"]["test"]).returncode != 0, 2,
                   "the HEALTHCHECK to fail once the lame duck began")
        during = container.http("/", timeout=5)
        answered = time.monotonic() - signalled
        code = container.wait_exit(30)
        exited = time.monotonic() - signalled
        figure(f"container: --lame-duck 3: a new request {answered:.2f} s after SIGTERM answered "
               f"{during.get('status')}; exit {code} {exited:.2f} s after SIGTERM")
        assert answered < 3 and during.get("status") == 200, f"a new request during the lame duck: {during}"
        assert code == 0, container.logs()[-3000:]
        assert exited >= 3, f"exited {exited:.2f} s after SIGTERM, before the 3 s lame duck ended"
    finally:
        container.kill()


def check_orphaned_children_are_reaped_by_pid_1(image: Path) -> None:
    container = probe_container(image, "orphans", "-w", "1")
    try:
        reply = container.http("/orphan?count=5&s=0.3")
        assert reply.get("status") == 200, reply
        orphans = json.loads(reply["body"])["orphans"]
        assert len(orphans) == 5, reply

        def reaped() -> bool:
            states = container.proc_states()
            return not any(pid in states for pid in orphans)
        try:
            wait_until(reaped, 15, f"PID 1 to reap the orphans {orphans} after they exited")
        except AssertionError as failure:
            states = container.proc_states()
            left = {pid: states[pid] for pid in orphans if pid in states}
            raise AssertionError(f"{failure}; still there (state, ppid, comm): {left}") from None
        zombies = {pid: s for pid, s in container.proc_states().items() if s[0] == "Z"}
        assert not zombies, f"zombies in the container: {zombies}"
    finally:
        container.kill()


def check_no_container_outlives_its_check(image: Path) -> None:
    def pid_1_alive(container: Container) -> bool:
        try:
            with open(f"/proc/{container.init_pid}/status") as status:
                return any(line.startswith("NSpid:") and line.split()[-1] == "1" for line in status)
        except (OSError, AttributeError):
            return False
    left = [f"{c.name} (host pid {c.init_pid})" for c in STARTED if pid_1_alive(c)]
    for container in STARTED:
        if pid_1_alive(container):
            os.kill(container.init_pid, signal.SIGKILL)
    assert not left, f"containers still running after their check: {left}"


CHECKS = [
    check_arbiter_is_pid_1_and_serves_the_example_app_with_the_default_cmd,
    check_healthcheck_command_exits_0_while_serving,
    check_logs_go_to_stdout_and_stderr_stays_empty,
    check_sigterm_to_pid_1_drains_a_request_in_flight_and_exits_0,
    check_lame_duck_serves_new_requests_after_sigterm_then_exits_0,
    check_orphaned_children_are_reaped_by_pid_1,
    check_no_container_outlives_its_check,  # last: it looks at every container the others started
]


def main() -> int:
    image = Path(sys.argv[1])
    OUT.mkdir(parents=True, exist_ok=True)
    only = os.environ.get("ARBITER_CONTAINER_CHECKS", "")
    passed = failed = 0
    for check in CHECKS:
        if only and only not in check.__name__:
            continue
        name = check.__name__[len("check_"):]
        started = time.monotonic()
        try:
            check(image)
        except Exception as error:  # noqa: BLE001  (every failure is reported and counted)
            failed += 1
            detail = str(error) if isinstance(error, AssertionError) else traceback.format_exc()
            print(f"FAIL {name} ({time.monotonic() - started:.1f} s): {detail}", flush=True)
        else:
            passed += 1
            print(f"PASS {name} ({time.monotonic() - started:.1f} s)", flush=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
