"""What a run prints: quiet, phase-labelled, each loss term, the report once, errors last and alone."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import warnings

import pytest

from distill.cli import console

#: Lightning's chatter that a default run must not print (checked on stdout and stderr)
CHATTER = ("GPU available", "TPU available", "Seed set", "litlogger", "on_before_batch_transfer", "Trainable params",
           "Restoring states", "`Trainer.fit` stopped", "LOCAL_RANK", "No CUDA runtime is found")


def test_a_default_run_is_quiet_and_says_each_phase(tiny_run_files):
    out, err = tiny_run_files.stdout, tiny_run_files.stderr
    for noise in CHATTER:
        assert noise not in out + err, noise
    lines = out.splitlines()
    assert lines[0] == f"run directory: {tiny_run_files.dir}"
    phases = [line for line in lines if re.match(r"\[\d/\d\] ", line)]
    assert [p[:5] for p in phases] == ["[1/3]", "[2/3]", "[3/3]"]
    assert phases[0].startswith("[1/3] training the teacher (resnet18, 1 epoch)")
    # what a phase line says is not said again on the console; the run's log file keeps the library's line
    assert "No teacher checkpoint given" not in out + err
    assert "No teacher checkpoint given: training teacher resnet18 first" in (tiny_run_files.dir / "run.log").read_text()
    assert phases[1].startswith("[2/3] distilling resnet18 into mobilenet_v3_small (1 epoch, loss kd ×0.9 + ce ×0.1)")
    assert phases[2].startswith("[3/3] measuring the teacher, the student on the test set")
    # bar off: one line per epoch with the total and each term
    epochs = [line for line in lines if line.startswith("epoch 1/1")]
    assert len(epochs) == 2  # the teacher's and the student's
    assert re.search(r"loss \S+ \(0\.9 kd \S+, 0\.1 ce \S+\)  val/\w+ ", epochs[1]), epochs[1]
    # the report once (no Markdown summary after the table), then where the files are
    assert out.count("Distillation report") == 1 and "# Distillation summary" not in out
    assert lines[-3:] == [
        f"report: {tiny_run_files.dir / 'report.md'}",
        f"figures: {tiny_run_files.dir / 'learning_curves.png'}, {tiny_run_files.dir / 'reliability.png'}",
        f"student weights: {tiny_run_files.dir / 'student.pt'}",
    ]


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_an_error_during_training_is_the_last_line_and_alone(tiny_run_files, tiny_overrides, tmp_path):
    # the cached teacher is reused; the student's learning rate (kept by +force=true) makes its loss non-finite inside Trainer.fit
    made = subprocess.run(
        [sys.executable, "-m", "distill.run", *tiny_overrides, "optimizer.lr=1e30", "+force=true", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env={**os.environ, "DISTILL_CACHE_DIR": str(tiny_run_files.cache)},
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert made.returncode == 2, made.stderr[-2000:]
    assert "[1/3] teacher resnet18: cached teacher " in made.stdout
    assert "reused from the cache" not in made.stdout + made.stderr  # said once, by the phase line
    for noise in CHATTER:
        assert noise not in made.stdout + made.stderr, noise
    err = [line for line in made.stderr.splitlines() if line.strip()]
    assert err[-1].startswith("error: loss term(s)") and "non-finite" in err[-1]
    assert not any(line.startswith("error:") for line in err[:-1])
    assert "Traceback" not in made.stderr


def test_epoch_line_shows_total_each_term_and_validation():
    line = console.epoch_line(2, 10, {"train/loss": 96.8, "train/loss/fitnet": 96.5, "train/loss/kd": 0.3}, {"val/acc": 0.5}, 3.04)
    assert line == "epoch 2/10  loss 96.8 (fitnet 96.5, kd 0.3)  val/acc 0.5  3.0 s"
    weighted = console.epoch_line(1, 3, {"train/loss": 2.0, "train/loss/kd": 2.0, "train/loss/ce": 2.0}, {}, 1.0, {"kd": 0.9, "ce": 0.1})
    assert weighted == "epoch 1/3  loss 2 (0.9 kd 2, 0.1 ce 2)  1.0 s"


def test_the_epoch_line_averages_the_total_and_each_term_over_every_step(make_cnn, capsys):
    """Terms logged every 4th step only are still averaged over all steps, like the total (also under accumulation)."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from distill import DistillationModule
    from distill.losses import KD, CrossEntropy

    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(torch.randn(80, 1, 8, 8), torch.randint(0, 10, (80,))), batch_size=8)  # 10 steps
    module = DistillationModule(make_cnn(), make_cnn(), {"kd": KD(weight=0.7), "ce": CrossEntropy(weight=0.3)})
    seen = {"loss": [], "kd": [], "ce": []}
    step = module.training_step

    def spy(batch, batch_idx):  # every step's values, read independently of the callback
        loss = step(batch, batch_idx)
        seen["loss"].append(float(loss.detach()))
        for name in ("kd", "ce"):
            seen[name].append(float(module.step_losses[f"train/loss/{name}"]))
        return loss

    module.training_step = spy
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=4, accumulate_grad_batches=2,
                        callbacks=[console.EpochLines()])
    trainer.fit(module, loader)
    line = [text for text in capsys.readouterr().out.splitlines() if text.startswith("epoch 1/1")]
    assert len(line) == 1, line
    found = re.fullmatch(r"epoch 1/1  loss (\S+) \(0\.7 kd (\S+), 0\.3 ce (\S+)\)  \d+\.\d s", line[0])
    assert found, line[0]
    total, kd, ce = map(float, found.groups())
    mean = {name: sum(values) / len(values) for name, values in seen.items()}
    assert len(seen["loss"]) == 10
    assert total == pytest.approx(mean["loss"], rel=1e-3)
    assert kd == pytest.approx(mean["kd"], rel=1e-3) and ce == pytest.approx(mean["ce"], rel=1e-3)
    assert total == pytest.approx(0.7 * kd + 0.3 * ce, rel=2e-3)  # the line adds up


def test_trainer_options_drop_the_model_summary_unless_verbose_or_asked():
    assert console.trainer_options({}, {}, verbose=False)["enable_model_summary"] is False
    assert "enable_model_summary" not in console.trainer_options({}, {}, verbose=True)
    assert "enable_model_summary" not in console.trainer_options({"enable_model_summary": True}, {}, verbose=False)
    with_bar = console.trainer_options({"enable_progress_bar": True}, {"callbacks": []}, verbose=False)
    assert [type(c).__name__ for c in with_bar["callbacks"]] == ["ShortNamesBar"]
    without = console.trainer_options({"enable_progress_bar": False}, {"callbacks": ["c"]}, verbose=False)
    assert without["callbacks"][0] == "c" and isinstance(without["callbacks"][1], console.EpochLines)


def test_the_bar_shows_each_term_under_a_short_name():
    assert [console.short_name(k) for k in ("train/loss", "train/loss/kd", "val/acc", "train/loss/fitnet")] == [
        "loss", "kd", "val_acc", "fitnet",
    ]


def test_phases_are_numbered_and_a_phase_already_entered_keeps_its_number(capsys):
    phases = console.Phases()
    phases.begin(3, "/runs/x")
    phases.enter("teacher", "training member a")
    phases.enter("teacher", "training member b")
    phases.enter_once("teacher", "teacher: reused")
    phases.enter("distill", "distilling")
    phases.enter_once("measure", "measuring")
    assert capsys.readouterr().out.splitlines() == [
        "run directory: /runs/x", "[1/3] training member a", "[1/3] training member b", "[2/3] distilling", "[3/3] measuring",
    ]


@pytest.fixture
def restored_logging():
    levels = {name: logging.getLogger(name).level for name in console.CHATTY_LOGGERS}
    formatters = [(h, h.formatter) for h in logging.getLogger().handlers]
    with warnings.catch_warnings():
        yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    for handler, formatter in formatters:
        handler.setFormatter(formatter)


def test_quiet_silences_lightning_info_but_not_its_warnings(restored_logging):
    import lightning  # noqa: F401  (sets its loggers to INFO when imported)

    console.quiet_libraries(verbose=False)
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert not rank_zero.isEnabledFor(logging.INFO) and rank_zero.isEnabledFor(logging.WARNING)
    assert not logging.getLogger("lightning.fabric.utilities.seed").isEnabledFor(logging.INFO)


def test_verbose_keeps_lightning_info(restored_logging):
    import lightning  # noqa: F401

    logging.getLogger("lightning.pytorch").setLevel(logging.INFO)
    console.quiet_libraries(verbose=True)
    assert logging.getLogger("lightning.pytorch.utilities.rank_zero").isEnabledFor(logging.INFO)


def test_only_the_own_module_warning_is_silenced(restored_logging):
    console.quiet_libraries(verbose=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        console.quiet_libraries(verbose=True)  # the filter goes in front of "default"
        warnings.warn("You have overridden `on_before_batch_transfer` in `LightningModule` but have passed in a "
                      "`LightningDataModule`. It will use the implementation from `LightningModule` instance.")
        warnings.warn("The dataloader does not have many workers")
    assert [str(w.message) for w in caught] == ["The dataloader does not have many workers"]


def test_quiet_keeps_deepspeeds_chatter_and_its_no_gpu_notice_off_the_console(restored_logging):
    import io

    deepspeed_logger = logging.getLogger("DeepSpeed")  # as DeepSpeed makes it: its own handler, level set on import
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    deepspeed_logger.addHandler(handler)
    try:
        console.quiet_libraries(verbose=False)
        deepspeed_logger.setLevel(logging.INFO)
        deepspeed_logger.info("DeepSpeedEngine configuration: ...")
        deepspeed_logger.warning("Setting accelerator to CPU. If you have GPU or other accelerator, we were unable to detect it.")
        deepspeed_logger.warning("a real warning")
    finally:
        deepspeed_logger.removeHandler(handler)
        deepspeed_logger.removeFilter(console._not_deepspeed_chatter)
    assert stream.getvalue() == "a real warning\n"


def test_pointers_name_the_report_the_figures_and_the_weights():
    summary = {"report": {"markdown": "/r/report.md", "reliability": "/r/reliability.png"}, "student": {"weights": "/r/student.pt"}}
    assert console.pointers(summary) == "report: /r/report.md\nfigures: /r/reliability.png\nstudent weights: /r/student.pt"


@pytest.mark.slow
def test_in_a_terminal_the_bar_shows_each_term_and_no_chatter(tiny_run_files, tiny_overrides, tmp_path):
    """Through a pseudo-terminal, as a user sees it: the progress bar on, Lightning quiet."""
    import pty

    overrides = [o for o in tiny_overrides if not o.startswith("trainer.enable_progress_bar")]
    command = [sys.executable, "-m", "distill.run", *overrides, f"hydra.run.dir={tmp_path / 'run'}"]
    env = {**os.environ, "DISTILL_CACHE_DIR": str(tiny_run_files.cache), "COLUMNS": "120"}
    leader, follower = pty.openpty()
    process = subprocess.Popen(command, stdin=follower, stdout=follower, stderr=follower, cwd=tmp_path, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=600) == 0
    os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    for noise in CHATTER:
        assert noise not in screen, noise
    assert "[2/3] distilling" in screen and "[3/3] measuring" in screen
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert re.search(r"loss:\s+\S+\s+kd:\s+\S+\s+ce:\s+\S+", plain)  # every term in the bar, not only the total
    assert screen.count("Distillation report") == 1
