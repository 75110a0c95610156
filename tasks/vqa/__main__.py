"""``python -m tasks.vqa train|eval|zeroshot ...``: see :mod:`tasks.vqa.train`, :mod:`tasks.vqa.evaluate` and
:mod:`tasks.vqa.zeroshot` (``python -m tasks.vqa COMMAND --help`` lists each command's options)."""

from __future__ import annotations

import sys

from envs.cli import command
from tasks.vl.commands import dispatch

COMMANDS = {"train": "tasks.vqa.train", "eval": "tasks.vqa.evaluate", "zeroshot": "tasks.vqa.zeroshot"}


@command
def main(argv: list[str]) -> int:
    return dispatch("python -m tasks.vqa", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
