#!/usr/bin/env python3
"""Run every test of a CMake build directory under a wrapper command (valgrind), one by one.

    ctest_under.py BUILD_DIR COUNTS_FILE WRAPPER...

ctest's memcheck mode needs CTest dashboard configuration in CMakeLists.txt; asking ctest for the
test list (--show-only=json-v1) and running the commands ourselves needs nothing. Each test's
output is printed; COUNTS_FILE receives "PASSED FAILED SKIPPED" (see count_results.py). Exits 1 if
any test failed under the wrapper.
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from count_results import counts_from_check_output  # noqa: E402

PER_TEST_TIMEOUT = 900


def main(build_dir, counts_file, *wrapper):
    listing = subprocess.run(["ctest", "--test-dir", build_dir, "--show-only=json-v1"],
                             check=True, capture_output=True, text=True).stdout
    tests = json.loads(listing).get("tests", [])
    passed = failed = 0
    for test in tests:
        properties = {p["name"]: p["value"] for p in test.get("properties", [])}
        if properties.get("DISABLED") or "command" not in test:
            continue
        env = dict(os.environ)
        for assignment in properties.get("ENVIRONMENT", []):
            name, _, value = assignment.partition("=")
            env[name] = value
        command = [*wrapper, *test["command"]]
        print(f"--- {test['name']}: {' '.join(command)}", flush=True)
        try:
            result = subprocess.run(command, cwd=properties.get("WORKING_DIRECTORY", build_dir), env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    errors="replace", timeout=PER_TEST_TIMEOUT)
            output, code = result.stdout, result.returncode
        except subprocess.TimeoutExpired as timeout:
            output, code = (timeout.stdout or b"").decode(errors="replace") + "\n[timed out]\n", 124
        print(output, flush=True)
        p, f = counts_from_check_output(output.splitlines(), code == 0)
        print(f"--- {test['name']}: exit {code}, {p} passed, {f} failed", flush=True)
        passed, failed = passed + p, failed + f
    with open(counts_file, "w") as counts:
        counts.write(f"{passed} {failed} 0\n")
    print(f"{len(tests)} test programs under {wrapper[0]}: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
