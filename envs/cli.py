"""Small helpers shared by the commands: ``--help`` text from a config dataclass's field docstrings."""

from __future__ import annotations

import ast
import inspect


def field_docs(cls: type) -> dict[str, str]:
    """The string literal under each field of dataclass ``cls`` (CleanRL's style), keyed by field name."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = str(nxt.value.value)
    return docs
