"""The `fleetroute` command line: every subcommand has a helpful --help, bad usage exits 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fleetroute import cli


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_each_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert f"fleetroute {command}" in out
    assert cli.COMMANDS[command][1] in " ".join(out.split())


def test_top_level_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in cli.COMMANDS:
        assert command in out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["fly"])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_console_script_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fleetroute", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "serve" in result.stdout


def test_serve_does_not_import_the_operator() -> None:
    code = (
        "import sys; from fleetroute import cli; cli.parser(['serve']);"
        "print('kopf' in sys.modules, 'fleetroute_operator' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]


def test_serve_with_a_bad_config_fails_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("policies: [{modelAlias: x, candidates: [nope]}]")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleetroute",
            "serve",
            "--config",
            str(bad),
            "--grpc",
            "127.0.0.1:0",
            "--admin",
            "",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "unknown pool 'nope'" in result.stderr
