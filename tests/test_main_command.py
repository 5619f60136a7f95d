"""The `distill` command (tested as `python -m distill`, the installed script may be absent): subcommands, help, listings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import distill
from distill.__main__ import COMMANDS

CONF = Path(distill.__file__).resolve().parent.parent / "conf"


def distill_command(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "distill", *args], capture_output=True, text=True, timeout=300, cwd=cwd, check=False)


def test_without_a_command_it_shows_the_commands_and_exits_2():
    made = distill_command()
    assert made.returncode == 2
    for name in COMMANDS:
        assert f"\n  {name} " in made.stdout


def test_version_is_distills():
    made = distill_command("--version")
    assert made.returncode == 0 and made.stdout == f"distill {distill.__version__}\n"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help_with_examples(command):
    made = distill_command(command, "--help")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"usage: distill {command}") and "\nexamples:\n" in made.stdout
    assert f"  distill {command}" in made.stdout.split("examples:")[1]


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_listings_name_every_option():
    losses, data = distill_command("losses"), distill_command("data")
    for stem in (p.stem for p in (CONF / "loss").glob("*.yaml")):
        assert f"\n{stem} " in losses.stdout or f"\n{stem}\n" in losses.stdout, stem
    assert "Zhao et al. 2022 (DKD)" in losses.stdout  # each method with its paper line
    for stem in (p.stem for p in (CONF / "data").glob("*.yaml")):
        assert f"\n{stem} " in data.stdout, stem
    models = distill_command("models").stdout
    assert " resnet56 " in models and " resnet18 " in models and "timm:<name>" in models


def test_an_unknown_command_gets_the_close_match():
    made = distill_command("rnu")
    assert made.returncode == 2
    assert made.stderr.strip() == "error: unknown command 'rnu'; did you mean 'run'? (commands: run, evaluate, export, layers, models, losses, data)"


def test_run_forwards_to_the_run_module_with_its_exit_code(tmp_path):
    made = distill_command("run", "loss.kd.temprature=4", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert made.returncode == 2
    assert made.stderr.strip().splitlines()[-1] == "error: unknown key 'temprature' in loss.kd; did you mean 'temperature'?"


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_layers_forwards_to_the_layers_module():
    made = distill_command("layers", "model=resnet8", "image_size=8")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("model resnet8 (input [B, 3, 8, 8], 10 classes)") and "layer1" in made.stdout


def test_the_console_script_is_registered():
    text = (CONF.parent / "pyproject.toml").read_text()
    assert 'distill = "distill.__main__:main"' in text and 'distill-run = "distill.run:cli"' in text


@pytest.mark.parametrize("command", ["run", "evaluate", "export"])
def test_the_help_examples_use_real_keys(command):
    """Each example's overrides pass the command's own key checks (a key the config lacks would be refused)."""
    import shlex

    from distill.cli.key_check import check_override_keys
    from distill.cli.overrides import check_checkpoint_command

    examples = COMMANDS[command][2].split("examples:")[1].splitlines()
    for line in (text.split("#")[0] for text in examples if text.strip()):
        argv = [arg for arg in shlex.split(line)[2:] if "=" in arg]
        if command == "run":
            check_override_keys(argv, CONF)
        else:
            check_checkpoint_command(argv, f"distill.{command}")
