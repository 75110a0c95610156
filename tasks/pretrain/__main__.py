"""``python -m tasks.pretrain pretrain|finetune ...``: see :mod:`tasks.pretrain.pretrain` and
:mod:`tasks.pretrain.finetune` (``python -m tasks.pretrain COMMAND --help`` lists each command's options)."""

from __future__ import annotations

import sys

from tasks.vl.commands import dispatch

COMMANDS = {"pretrain": "tasks.pretrain.pretrain", "finetune": "tasks.pretrain.finetune"}


def main(argv: list[str] | None = None) -> int:
    return dispatch("python -m tasks.pretrain", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
