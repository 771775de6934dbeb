#!/usr/bin/env python3
"""Turn one test stage's output into counts for test.sh's summary line.

Prints one line: "PASSED FAILED SKIPPED". Usage:

    count_results.py ctest LOG      output of `ctest -V`: check's "Checks: N, Failures: F, Errors: E"
                                    lines per ctest test; a test without such a line counts as one
                                    test; a test ctest reports failed with no failed check inside
                                    (crash, sanitizer or valgrind report, leak) adds one failure
    count_results.py check LOG CODE output of one check runner and its exit code (same rules)
    count_results.py junit XML      pytest's --junitxml report
    count_results.py summary LOG    a runner's own "N passed, N failed[, N skipped]" last line
"""

import re
import sys
import xml.etree.ElementTree as ElementTree
from collections import defaultdict

CHECK_SUMMARY = re.compile(r"\d+%: Checks: (\d+), Failures: (\d+), Errors: (\d+)")
CTEST_RESULT = re.compile(r"^\s*\d+/\d+ Test\s+#(\d+): \S+ \.*\s*(.*?)\s+[\d.]+ sec\s*$")


def counts_from_check_output(lines, runner_succeeded):
    passed = failed = 0
    found = False
    for line in lines:
        match = CHECK_SUMMARY.search(line)
        if match:
            found = True
            checks, failures, errors = map(int, match.groups())
            passed += checks - failures - errors
            failed += failures + errors
    if not found:
        return (1, 0) if runner_succeeded else (0, 1)
    if not runner_succeeded and failed == 0:
        failed += 1  # every check passed, yet the runner failed: crash, leak or sanitizer report
    return passed, failed


def ctest(path):
    output = defaultdict(list)
    status = {}
    with open(path, errors="replace") as log:
        for line in log:
            result = CTEST_RESULT.match(line)
            if result:
                status[result.group(1)] = result.group(2).strip() == "Passed"
                continue
            prefixed = re.match(r"^(\d+): (.*)$", line)
            if prefixed:
                output[prefixed.group(1)].append(prefixed.group(2))
    passed = failed = 0
    for test, succeeded in status.items():
        p, f = counts_from_check_output(output[test], succeeded)
        passed, failed = passed + p, failed + f
    return passed, failed, 0


def check(path, code):
    with open(path, errors="replace") as log:
        p, f = counts_from_check_output(log, int(code) == 0)
    return p, f, 0


def junit(path):
    root = ElementTree.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    passed = failed = skipped = 0
    for suite in suites:
        tests, failures, errors, skips = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
        passed += tests - failures - errors - skips
        failed += failures + errors
        skipped += skips
    return passed, failed, skipped


def summary(path):
    with open(path, errors="replace") as log:
        lines = [line for line in log if line.strip()]
    match = lines and re.match(r"^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?\s*$", lines[-1])
    if not match:
        raise ValueError("no 'N passed, N failed' last line")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def main(argv):
    kind, *arguments = argv
    handlers = {"ctest": ctest, "check": check, "junit": junit, "summary": summary}
    print(*handlers[kind](*arguments))


if __name__ == "__main__":
    main(sys.argv[1:])
