"""Command lines from config dataclasses (envs.cli): help from docstrings, real defaults, types, errors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from envs.cli import config_parser, field_docs, parse_config


@dataclass
class Demo:
    """A config exercising every kind of field."""

    out: Path
    """where to write"""
    mode: Literal["fast", "exact"] = "exact"
    """how to run"""
    steps: int | None = None
    """how many steps (default: until done)"""
    rate: float = 0.5
    """a rate, 50% by default"""
    names: list[str] = field(default_factory=list)
    """names to keep"""
    verbose: bool = False
    """say more"""
    cache: bool = True
    """keep a cache"""
    hidden: object | None = field(default=None, metadata={"cli": False})
    """not an option"""


def test_fields_become_typed_options():
    cfg = parse_config(Demo, ["--out", "x.json", "--mode", "fast", "--steps", "3", "--rate", "0.25", "--names",
                              "a", "b", "--verbose", "--no-cache"], prog="demo")
    assert cfg == Demo(Path("x.json"), "fast", 3, 0.25, ["a", "b"], True, False)
    assert parse_config(Demo, ["--out", "y"], prog="demo") == Demo(Path("y"))


def test_help_shows_docstrings_and_real_defaults():
    text = config_parser(Demo, prog="demo").format_help()
    assert "how to run (default: exact)" in text and "a rate, 50% by default (default: 0.5)" in text
    assert "{fast,exact}" in text and "--no-cache" in text and "--hidden" not in text
    assert "None" not in text  # a None default is explained by the docstring, never shown as "None"


def test_bad_values_and_missing_required_options_exit_with_usage(capsys):
    for argv in (["--mode", "fast"], ["--out", "x", "--mode", "slow"], ["--out", "x", "--steps", "many"]):
        with pytest.raises(SystemExit) as exit_info:
            parse_config(Demo, argv, prog="demo")
        assert exit_info.value.code == 2
    assert "--steps: invalid int value" in capsys.readouterr().err


def test_positional_required_exclusive_and_default_text():
    @dataclass
    class Command:
        task: Literal["r2r", "rxr"] = "r2r"
        """the task"""
        a: bool = False
        """one source"""
        b: bool = False
        """the other"""
        iters: int | None = None
        """iterations"""

    parser = config_parser(Command, prog="cmd", positional=("task",), exclusive=[("a", "b")],
                           defaults_text={"iters": "80,000 on real data"})
    assert parser.parse_args([]).task == "r2r" and parser.parse_args(["rxr", "--a"]).a
    assert "iterations (default: 80,000 on real data)" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["--a", "--b"])
    required = config_parser(Command, prog="cmd", positional=("task",), required=("task",))
    with pytest.raises(SystemExit):
        required.parse_args([])


def test_every_command_documents_every_option():
    """Each command's --help has a line of text for each of its options and never a bare None default."""
    from agents.augment import AugmentConfig
    from agents.baselines import BaselineConfig
    from agents.train_config import TrainConfig, build_parser
    from envs.world.__main__ import BuildCommand, parser as world_parser
    from envs.world.writer import WorldConfig
    from eval.__main__ import ScoreConfig, build_parser as eval_parser
    from features.convert import ConvertConfig
    from features.extract import ExtractConfig
    from tasks.pretrain.finetune import FinetuneConfig
    from tasks.pretrain.pretrain import PretrainConfig

    for cls in (AugmentConfig, BaselineConfig, TrainConfig, BuildCommand, WorldConfig, ScoreConfig, ConvertConfig,
                ExtractConfig, PretrainConfig, FinetuneConfig):
        docs = field_docs(cls)
        missing = [f.name for f in dataclasses.fields(cls) if f.metadata.get("cli", True) and not docs.get(f.name)]
        assert not missing, f"{cls.__name__} fields without a docstring: {missing}"
    train_help = " ".join(build_parser().format_help().split())
    assert "None" not in train_help
    assert "80,000 with --data-dir, 400 on the built-in world" in train_help  # the budgets' real defaults
    assert "--no-skyboxes" in world_parser().format_help()
    rxr_help = eval_parser()._subparsers._group_actions[0].choices["rxr"].format_help()
    assert "--languages" in rxr_help and "--all-instructions" not in rxr_help


def test_command_turns_errors_into_one_line(capsys, tmp_path, monkeypatch):
    """The toolkit's errors and refused files exit 2 with one line, a bug exits 1 saying so, Ctrl-C exits 130;
    --debug or CLIPVIL_DEBUG=1 lets the error through with its traceback."""
    from envs.cli import command
    from envs.datadir import DataError

    raised: list[BaseException] = []

    @command
    def main(argv):
        raise raised[-1]

    monkeypatch.delenv("CLIPVIL_DEBUG", raising=False)
    cases = [(DataError("data/x.json: entry 3 field 'heading' is nan. Fix it"), 2,
              "error: data/x.json: entry 3 field 'heading' is nan. Fix it"),
             (FileNotFoundError(2, "No such file or directory", str(tmp_path / "gone.json")), 2,
              f"error: {tmp_path / 'gone.json'}: No such file or directory"),
             (PermissionError(13, "Permission denied", "/root/out.json"), 2,
              "error: /root/out.json: Permission denied. Check the file's permissions"),
             (ZeroDivisionError("division by zero"), 1, "error: unexpected ZeroDivisionError: division by zero. "
              "This is a bug of the toolkit: rerun with --debug"),
             (KeyboardInterrupt(), 130, "error: interrupted")]
    for exc, status, line in cases:
        raised.append(exc)
        assert main([]) == status
        err = capsys.readouterr().err
        assert err.startswith(line) and err.count("\n") == 1 and "Traceback" not in err, err
    raised.append(DataError("boom"))
    with pytest.raises(DataError):
        main(["--debug"])
    monkeypatch.setenv("CLIPVIL_DEBUG", "1")
    with pytest.raises(DataError):
        main([])


def test_every_command_takes_debug():
    """Every ``python -m`` command is wrapped by envs.cli.command and documents --debug in its --help."""
    import importlib
    import io
    from contextlib import redirect_stdout

    commands = {"agents.train": [], "agents.evaluate": [], "agents.baselines": [], "agents.augment": [],
                "eval.__main__": ["r2r"], "eval.replay.__main__": [], "features.extract": [], "features.convert": [],
                "envs.world.__main__": [], "features.gradcam": [], "tasks.vqa.train": [], "tasks.vqa.evaluate": [],
                "tasks.vqa.zeroshot": [], "tasks.captioning.train": [], "tasks.captioning.evaluate": []}
    commands = [*commands.items(), ("tasks.vqa.__main__", ["train"]), ("tasks.vqa.__main__", ["eval"]),
                ("tasks.vqa.__main__", ["zeroshot"]), ("tasks.captioning.__main__", ["train"]),
                ("tasks.captioning.__main__", ["eval"])]
    for name, prefix in commands:
        main = importlib.import_module(name).main
        assert hasattr(main, "__wrapped__"), f"{name}.main is not wrapped by envs.cli.command"
        text = io.StringIO()
        with redirect_stdout(text), pytest.raises(SystemExit):
            main([*prefix, "--help"])
        assert "--debug" in text.getvalue() and "CLIPVIL_DEBUG" in text.getvalue(), name
