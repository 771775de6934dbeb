#!/usr/bin/env python3
"""cycles.py - counts the cycles among the supervisor's files; exits 1 when there is one.

A file is a module: foo.c and foo.h together.  Module A depends on module B when
  - foo.c or foo.h of A includes "b.h", or
  - A's code names a function that B's .c defines without `static` (a call, or a callback
    handed over by name).
A cycle is a strongly connected set of two or more modules.  Each one is printed with one
path around it, so the arrow to remove can be read off.

    scripts/cycles.py [DIR]        DIR defaults to supervisor/ next to this script
    scripts/cycles.py --graph      also prints every module's arrows
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)\.h"', re.M)
# A definition starts at column 0: a return type, the name, "(" ... and a "{" before any ";".
DEFINITION = re.compile(r"^(?!static\b)(?![#}\s/])[A-Za-z_][\w \t\*]*?\b([A-Za-z_]\w*)\s*\(([^;{]*?)\)\s*\{",
                        re.M | re.S)
IDENT = re.compile(r"\b([A-Za-z_]\w*)\b")
COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
STRING = re.compile(r'"(?:\\.|[^"\\\n])*"')


def strip(text: str) -> str:
    return STRING.sub('""', COMMENT.sub(" ", text))


def modules(root: Path) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for path in sorted(root.iterdir()):
        if path.suffix in (".c", ".h"):
            found.setdefault(path.stem, {})[path.suffix] = path.read_text(encoding="utf-8")
    return found


def graph(found: dict[str, dict[str, str]]) -> dict[str, set[str]]:
    owner: dict[str, str] = {}
    for name, parts in found.items():
        for match in DEFINITION.finditer(strip(parts.get(".c", ""))):
            owner[match.group(1)] = name
    edges: dict[str, set[str]] = {name: set() for name in found}
    for name, parts in found.items():
        for text in parts.values():
            for included in INCLUDE.findall(text):
                if included in found and included != name:
                    edges[name].add(included)
        for ident in set(IDENT.findall(strip(parts.get(".c", "")))):
            target = owner.get(ident)
            if target is not None and target != name:
                edges[name].add(target)
    return edges


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; returns the components of two or more modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def one_cycle(edges: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside the component."""
    members = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(edges[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start] + path[::-1][1:] + [start] if len(path) > 1 else [start, node, start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return component


def main(argv: list[str]) -> int:
    show_graph = "--graph" in argv
    rest = [a for a in argv if a != "--graph"]
    root = Path(rest[0]) if rest else Path(__file__).resolve().parent.parent / "supervisor"
    edges = graph(modules(root))
    if show_graph:
        for name in sorted(edges):
            print(f"{name} -> {' '.join(sorted(edges[name]))}")
    components = strongly_connected(edges)
    for component in components:
        print(f"cycle of {len(component)}: {' '.join(component)}")
        print(f"  e.g. {' -> '.join(one_cycle(edges, component))}")
    print(f"{len(components)} cycle(s) among {len(edges)} modules of {root.name}/")
    return 1 if components else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
