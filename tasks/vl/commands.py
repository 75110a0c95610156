"""``python -m PACKAGE COMMAND ...`` for the V&L packages: one dispatcher, each command a module's ``main``."""

from __future__ import annotations

import sys
from importlib import import_module


def dispatch(prog: str, commands: dict[str, str], argv: list[str] | None = None) -> int:
    """Run ``commands[argv[0]]``'s ``main(argv[1:])`` (a module path per command name)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in commands:
        print(f"usage: {prog} {{{','.join(commands)}}} [options]  (--help after a command lists them)",
              file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    return import_module(commands[argv[0]]).main(argv[1:])
