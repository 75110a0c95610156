"""Command lines from config dataclasses: the one way every command of the toolkit builds its ``--help``.

A command keeps its options in one dataclass; the string literal under each field (CleanRL's style) is that
option's help, and the help line ends with the default the command really uses::

    @dataclass
    class ScoreConfig:
        split: str = "val_unseen"
        \"\"\"the split the results were produced on\"\"\"

    config = parse_config(ScoreConfig, argv, prog="python -m eval")

How a field becomes an option (``data_dir`` -> ``--data-dir``), by its type:

- ``bool``: a flag; ``--name`` when the default is False, ``--no-name`` when it is True.
- ``Literal["a", "b"]``: ``choices`` (or ``choices={"name": a_tuple}`` where the values are a constant
  elsewhere); ``int``, ``float``, ``str``, ``Path``: that type; ``X | None``: as X.
- ``list[X]``: one or more values (``nargs="+"``).
- a field without a default, or named in ``required``, is required on the command line (a default then
  serves callers that build the config in code); a field named in ``positional`` is a positional argument.
- a field with ``metadata={"cli": False}`` is not an option (e.g. an object a test passes in).

A default of None shows no default (the docstring says what None means); ``defaults_text`` replaces the
shown default where it depends on something else (e.g. budgets that differ on the built-in world).

Every command's ``main`` is wrapped by :func:`command`: a bad input is one ``error: ...`` line on stderr and a
non-zero exit, never a traceback (``--debug`` or ``CLIPVIL_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import errno
import functools
import inspect
import os
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from envs.datadir import DataError

T = TypeVar("T")
DEBUG_FLAG = "--debug"
DEBUG_ENV = "CLIPVIL_DEBUG"
EXIT_BAD_INPUT = 2  # a DataError or a file the system refused: the user can fix it (argparse's usage errors too)
EXIT_BUG = 1  # anything else: a bug of the toolkit
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


def debug_requested(argv: Sequence[str]) -> bool:
    """Whether ``--debug`` is among the arguments or ``$CLIPVIL_DEBUG`` is set (to anything but 0 or empty)."""
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def error_message(exc: BaseException) -> tuple[str, int]:
    """The one line a command prints for ``exc`` and its exit status.

    The toolkit's :class:`~envs.datadir.DataError` already names the file, the entry and the fix; a file the
    system refuses (missing, not allowed, disk full) names the file and the system's reason; anything else is
    a bug, said as such.
    """
    if isinstance(exc, DataError):
        return str(exc), EXIT_BAD_INPUT
    if isinstance(exc, OSError) and exc.errno is not None:
        reason = exc.strerror or os.strerror(exc.errno)
        fix = {errno.ENOSPC: "Free some disk space and run again (interrupted jobs resume)",
               errno.EACCES: "Check the file's permissions", errno.EROFS: "Write to another folder"}.get(exc.errno, "")
        text = reason if exc.filename is None else f"{exc.filename}: {reason}"
        return text + (f". {fix}" if fix else ""), EXIT_BAD_INPUT
    if isinstance(exc, MemoryError):
        return "out of memory. Use a smaller --batch-size, float16 features, or fewer scans", EXIT_BAD_INPUT
    detail = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    return (f"unexpected {detail}. This is a bug of the toolkit: rerun with {DEBUG_FLAG} (or {DEBUG_ENV}=1) for the "
            "traceback and report it", EXIT_BUG)


def command(main: Callable[[list[str]], int | None]) -> Callable[[Sequence[str] | None], int]:
    """Wrap a command's ``main(argv)``: errors become one ``error: ...`` line on stderr and a non-zero exit.

    The wrapped function takes ``argv=None`` (then ``sys.argv[1:]``) and returns the exit status: the body's
    (None is 0), :data:`EXIT_BAD_INPUT` for a :class:`~envs.datadir.DataError` or a refused file,
    :data:`EXIT_BUG` for anything else, :data:`EXIT_INTERRUPTED` for Ctrl-C. With ``--debug`` (which every
    command's parser accepts, see :func:`add_debug_option`) or ``CLIPVIL_DEBUG=1`` the error propagates with
    its traceback. ``--help`` and usage errors exit as argparse does.
    """

    @functools.wraps(main)
    def run(argv: Sequence[str] | None = None) -> int:
        args = list(sys.argv[1:] if argv is None else argv)
        try:
            status = main(args)
        except KeyboardInterrupt:
            if debug_requested(args):
                raise
            print("error: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as exc:  # noqa: BLE001 - the point: no traceback reaches the user
            if debug_requested(args):
                raise
            message, status = error_message(exc)
            print(f"error: {message}", file=sys.stderr)
            return status
        return 0 if status is None else int(status)

    return run


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    """``--debug``: show the full traceback of an error (read by :func:`command`; parsers only accept it)."""
    parser.add_argument(DEBUG_FLAG, action="store_true",
                        help=f"on an error, show the full traceback (also {DEBUG_ENV}=1)")


def field_docs(cls: type) -> dict[str, str]:
    """The string literal under each field of dataclass ``cls`` (and of the dataclasses it derives from),
    keyed by field name ({} without source)."""
    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__[1:]):
        if dataclasses.is_dataclass(base):
            docs.update(field_docs(base))
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):  # no source (a frozen install): options keep their names only
        return docs
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())  # type: ignore[attr-defined]
    return docs


def _unwrap_optional(kind: Any) -> Any:
    """``X | None`` -> X; anything else unchanged."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return kind


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _shown(value: Any) -> str | None:
    """How a default reads in ``--help`` (None: not shown)."""
    if value is None or value is dataclasses.MISSING or value == [] or isinstance(value, bool):
        return None
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, *, positional: Sequence[str] = (),
                         required: Iterable[str] = (), exclude: Iterable[str] = (),
                         exclusive: Sequence[Sequence[str]] = (),
                         choices: Mapping[str, Sequence[Any]] | None = None,
                         defaults_text: Mapping[str, str] | None = None) -> None:
    """Add one argument per field of dataclass ``cls`` to ``parser`` (see the module docstring).

    ``exclusive`` lists groups of fields that may not be given together on the command line.
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    defaults_text = dict(defaults_text or {})
    skip, must = set(exclude), set(required)
    groups = {name: parser.add_mutually_exclusive_group() for group in exclusive for name in group[:1]}
    group_of = {name: groups[group[0]] for group in exclusive for name in group}
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.metadata.get("cli", True):
            continue
        kind = _unwrap_optional(hints[f.name])
        default = dataclasses.MISSING if f.name in must else _default(f)
        help_text = docs.get(f.name, "")
        shown = defaults_text.get(f.name, _shown(default))
        if shown is not None:
            help_text = f"{help_text} (default: {shown})" if help_text else f"default: {shown}"
        kwargs: dict[str, Any] = {"help": help_text.replace("%", "%%")}
        target = group_of.get(f.name, parser)
        flag = "--" + f.name.replace("_", "-")
        if kind is bool:
            if default is True:
                kwargs["help"] += " (on by default: this flag turns it off)"
                target.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false",
                                    **kwargs)
            else:
                target.add_argument(flag, dest=f.name, action="store_true", **kwargs)
            continue
        if typing.get_origin(kind) is list:
            (item,) = typing.get_args(kind) or (str,)
            kwargs["nargs"] = "+"
            kind = item
        if typing.get_origin(kind) is Literal:
            choices = typing.get_args(kind)
            kwargs["choices"] = choices
            kind = type(choices[0])
        if choices and f.name in choices:
            kwargs["choices"] = tuple(choices[f.name])
        kwargs["type"] = Path if kind is Path else kind if kind in (int, float, str) else str
        if f.name in positional:
            if default is not dataclasses.MISSING:
                kwargs["nargs"] = kwargs.get("nargs", "?")
                kwargs["default"] = default
            target.add_argument(f.name, **kwargs)
        elif default is dataclasses.MISSING:
            target.add_argument(flag, dest=f.name, required=True, **kwargs)
        else:
            target.add_argument(flag, dest=f.name, default=default, **kwargs)


def config_parser(cls: type, prog: str, description: str | None = None, **options: Any) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` for dataclass ``cls`` (and ``--debug``); ``options`` as :func:`add_config_arguments`
    takes them."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_config_arguments(parser, cls, **options)
    add_debug_option(parser)
    return parser


def config_from_args(cls: type[T], args: argparse.Namespace | Mapping[str, Any]) -> T:
    """Build ``cls`` from parsed arguments, ignoring entries that are not its fields."""
    values = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in values.items() if k in names})


def parse_config(cls: type[T], argv: Sequence[str] | None, prog: str, description: str | None = None,
                 **options: Any) -> T:
    """Parse ``argv`` into an instance of ``cls`` (``--help`` and usage errors exit, as argparse does)."""
    return config_from_args(cls, config_parser(cls, prog, description, **options).parse_args(argv))
