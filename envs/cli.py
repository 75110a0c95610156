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
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

T = TypeVar("T")


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
    """An ``ArgumentParser`` for dataclass ``cls``; ``options`` as :func:`add_config_arguments` takes them."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_config_arguments(parser, cls, **options)
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
