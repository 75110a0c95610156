"""``python -m tasks.captioning train|eval ...``: see :mod:`tasks.captioning.train` and
:mod:`tasks.captioning.evaluate` (``python -m tasks.captioning COMMAND --help`` lists each command's options)."""

from __future__ import annotations

import sys

from envs.cli import command
from tasks.vl.commands import dispatch

COMMANDS = {"train": "tasks.captioning.train", "eval": "tasks.captioning.evaluate"}


@command
def main(argv: list[str]) -> int:
    return dispatch("python -m tasks.captioning", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
