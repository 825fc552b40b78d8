#!/usr/bin/env python3
"""Fail when modules of the package import each other in a circle.

Imports inside functions count (a cycle hidden in a function is still a cycle); imports under
`TYPE_CHECKING` do not, since they exist only for the type checker. Prints each cycle found.
"""

from __future__ import annotations

import sys

import grimp


def import_cycles(package: str) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan's algorithm)."""
    graph = grimp.build_graph(
        package, include_external_packages=False, exclude_type_checking_imports=True
    )
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0

    def visit(module: str) -> None:
        nonlocal counter
        index[module] = low[module] = counter
        counter += 1
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def main() -> int:
    package = sys.argv[1] if len(sys.argv) > 1 else "skillswap"
    groups = import_cycles(package)
    for group in groups:
        print("import cycle: " + " <-> ".join(group))
    if not groups:
        print(f"no import cycle in {package}")
    return 1 if groups else 0


if __name__ == "__main__":
    raise SystemExit(main())
