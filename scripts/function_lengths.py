#!/usr/bin/env python3
"""function_lengths.py - lists the supervisor's functions longer than the limit; exits 1 when there is one.

A function is counted from the line of its name to its closing brace at column 0. Tables (an
initialised array or struct at file scope) are not functions and are not counted.

    scripts/function_lengths.py [--limit N] [DIR]     N defaults to 80, DIR to supervisor/
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

START = re.compile(r"^(?![#}\s/])[A-Za-z_][\w \t\*]*?\b([A-Za-z_]\w*)\s*\([^;{]*?\)\s*\{", re.M | re.S)


def long_functions(root: Path, limit: int) -> list[tuple[str, str, int]]:
    found = []
    for path in sorted(root.glob("*.c")):
        text = path.read_text(encoding="utf-8")
        for match in START.finditer(text):
            first = text.count("\n", 0, match.start()) + 1
            end = text.find("\n}", match.end())
            if end < 0:
                continue
            last = text.count("\n", 0, end) + 2
            length = last - first + 1
            if length > limit:
                found.append((f"{path.name}:{first}", match.group(1), length))
    return found


def main(argv: list[str]) -> int:
    limit = 80
    if "--limit" in argv:
        at = argv.index("--limit")
        limit = int(argv[at + 1])
        del argv[at : at + 2]
    root = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "supervisor"
    found = long_functions(root, limit)
    for where, name, length in found:
        print(f"{where}: {name}() is {length} lines (limit {limit})")
    print(f"{len(found)} function(s) over {limit} lines in {root.name}/")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
