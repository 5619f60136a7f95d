"""distill.cli.saved_run: a run directory found from its files, its config read, its data taken with the command line's."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from distill.cli.config_directory import config_dir
from distill.cli.overrides import command_line_keys
from distill.cli.saved_run import data_config, find_run_config, load_run_config
from distill.errors import DistillError

CONF = config_dir()


@pytest.fixture(scope="module")
def tiny_run(tiny_run_files):
    """The session's tiny run (tests/conftest.py)."""
    return tiny_run_files


def test_the_run_config_is_found_next_to_its_files_and_its_data_taken_with_overrides(tiny_run, tmp_path):
    config = tiny_run.dir / ".hydra" / "config.yaml"
    assert find_run_config(tiny_run.best) == config.resolve()
    assert find_run_config(tiny_run.dir / "student.pt") == config.resolve()
    assert find_run_config(tmp_path / "student.pt") is None
    run_cfg = load_run_config(config)

    def composed(*overrides):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("evaluate", overrides=["checkpoint=x", *overrides])
        return data_config(cfg, run_cfg, command_line_keys(overrides))

    assert (composed().image_size, composed().batch_size) == (8, 64)  # the run's
    assert (composed("data.batch_size=100").image_size, composed("data.batch_size=100").batch_size) == (8, 100)
    assert composed("data=digits").image_size == 32  # the group chosen again: its defaults
    (tmp_path / "config.yaml").write_text("a: 1\n")
    with pytest.raises(DistillError, match="is not the config of a distill run"):
        load_run_config(tmp_path / "config.yaml")
