"""benchmarks/step_time.py on a tiny setting: every contender runs, the JSON and the ratios are right.

No timing is asserted: the numbers depend on the machine.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import step_time
from step_time_contenders import (
    CE_WEIGHT,
    KD_WEIGHT,
    TEMPERATURE,
    Settings,
    StepClock,
    hand_loss,
    prepare_cache,
    run_contender,
)

# lr=0: no step changes the weights, so the tiny random pair cannot diverge; these tests check the
# bookkeeping of each contender, not its training
TINY = Settings(
    teacher="resnet18", student="resnet18", image_size=8, batch_size=4, warmup=1, steps=2, threads=1, lr=0.0
)
TINY_SMALL_PAIR = Settings(**{**step_time.SMALL_PAIR, "batch_size": 10, "warmup": 2, "steps": 3, "threads": 1})
RESULT_KEYS = {
    "contender", "seconds_per_step", "step_seconds", "setup_s", "warmup_s", "epoch_end_s",
    "rss_before_steps_mb", "peak_rss_steps_mb", "peak_rss_mb", "threads",
}


# -- the math is the same in every contender --------------------------------------------
def test_hand_loss_is_distills_kd_plus_ce():
    from distill import DistillationModule
    from distill.losses import KD, CrossEntropy
    from distill.losses.base import StepOutputs

    torch.manual_seed(0)
    student, teacher, labels = torch.randn(6, 10), torch.randn(6, 10) * 3, torch.randint(0, 10, (6,))
    module = DistillationModule(
        torch.nn.Linear(2, 10), torch.nn.Linear(2, 10),
        {"kd": KD(temperature=TEMPERATURE, weight=KD_WEIGHT), "ce": CrossEntropy(weight=CE_WEIGHT)},
    )
    outputs = StepOutputs(student=student, teacher=teacher, labels=labels)
    distill_total = module._total(module._loss_terms(outputs, skip_unlabeled=False))
    # independently: PyTorch's KL divergence (batch mean) and cross-entropy
    kl = F.kl_div(F.log_softmax(student / 4, 1), F.log_softmax(teacher / 4, 1), log_target=True, reduction="batchmean")
    expected = 0.9 * 16 * kl + 0.1 * F.cross_entropy(student, labels)
    assert torch.allclose(hand_loss(student, teacher, labels), expected, atol=1e-6)
    assert torch.allclose(distill_total, expected, atol=1e-6)


def test_torchdistill_kd_loss_is_the_same_math():
    pytest.importorskip("torchdistill")
    from torchdistill.losses.mid_level import KDLoss

    torch.manual_seed(1)
    student, teacher, labels = torch.randn(5, 10), torch.randn(5, 10), torch.randint(0, 10, (5,))
    loss = KDLoss(".", "output", ".", "output", temperature=TEMPERATURE, alpha=CE_WEIGHT, beta=KD_WEIGHT)
    value = loss({".": {"output": student}}, {".": {"output": teacher}}, labels)
    assert torch.allclose(value, hand_loss(student, teacher, labels), atol=1e-6)


# -- the clock and the statistics -----------------------------------------------------------
def test_clock_leaves_out_warmup_and_averages_the_timed_steps():
    clock = StepClock(warmup=2, born=0.0)
    clock.start()
    clock.ticks = [1.0, 2.0, 4.0, 7.0, 11.0]  # step ends; the first two are warm-up
    result = clock.result("x", Settings(warmup=2, steps=3), finished=12.5)
    assert result["step_seconds"] == [2.0, 3.0, 4.0]
    assert result["seconds_per_step"] == pytest.approx(3.0)
    assert result["epoch_end_s"] == pytest.approx(1.5)
    with pytest.raises(RuntimeError, match="4 steps ticked, expected 5"):
        clock.ticks = clock.ticks[:4]
        clock.result("x", Settings(warmup=2, steps=3))
    with pytest.raises(ValueError, match="warmup must be at least 1"):
        StepClock(warmup=0)


def test_schedule_interleaves_and_rotates():
    assert step_time.schedule(["a", "b", "c"], 3) == [
        (0, "a"), (0, "b"), (0, "c"), (1, "b"), (1, "c"), (1, "a"), (2, "c"), (2, "a"), (2, "b"),
    ]


def _run(seconds: float, rss: float = 100.0) -> dict:
    return {
        "seconds_per_step": seconds, "peak_rss_mb": rss, "peak_rss_steps_mb": rss, "rss_before_steps_mb": rss,
        "warmup_s": 1.0, "epoch_end_s": 0.5,
    }


def test_summary_and_ratios_against_hand_computed_values():
    distill_runs = [_run(0.30, 1300), _run(0.20, 1200), _run(0.25, 1250), _run(0.35, 1280)]
    hand_runs = [_run(0.30, 1000), _run(0.20, 1100), _run(0.20, 1050), _run(0.24, 1040)]
    distill, hand = step_time.summarize(distill_runs), step_time.summarize(hand_runs)
    # medians: distill (0.25 + 0.30) / 2 = 0.275, hand (0.20 + 0.24) / 2 = 0.22; RSS 1265 and 1045
    assert distill["seconds_per_step"] == pytest.approx(0.275)
    assert hand["seconds_per_step"] == pytest.approx(0.22)
    assert (distill["seconds_per_step_min"], distill["seconds_per_step_max"]) == (0.20, 0.35)
    # quartiles of 0.20, 0.25, 0.30, 0.35 at positions 1.25 and 3.75: 0.2125 and 0.3375
    assert distill["seconds_per_step_iqr"] == pytest.approx(0.125)
    assert step_time.summarize(hand_runs[:3])["seconds_per_step_iqr"] is None  # too few runs for quartiles
    runs = {"distill": distill_runs, "hand": hand_runs}
    rows = step_time.ratios({"distill": distill, "hand": hand}, step_time.TARGETS, runs)
    by_name = {row["name"]: row for row in rows}
    assert set(by_name) == {"distill/hand", "distill/hand (peak_rss_mb)"}  # the others' contenders were not run
    speed, memory = by_name["distill/hand"], by_name["distill/hand (peak_rss_mb)"]
    assert speed["value"] == pytest.approx(0.275 / 0.22)  # 1.25
    # per repetition 1.0, 1.0, 1.25, 1.4583: median 1.125; the target (1.02) is checked on it
    assert speed["paired"] == pytest.approx(1.125)
    assert (speed["paired_min"], speed["paired_max"]) == (pytest.approx(1.0), pytest.approx(0.35 / 0.24))
    assert speed["passed"] is False
    assert memory["value"] == pytest.approx(1265 / 1045)  # 1.2105
    # per repetition 1.3, 1.0909, 1.1905, 1.2308: median (1.1905 + 1.2308) / 2 = 1.2106 > 1.1
    assert memory["paired"] == pytest.approx((1250 / 1050 + 1280 / 1040) / 2)
    assert memory["passed"] is False
    # a drift in load between repetitions: the medians' ratio fails, the paired one passes
    drift = {"distill": [_run(0.40), _run(0.40), _run(0.20)], "hand": [_run(0.40), _run(0.20), _run(0.20)]}
    summary = {name: step_time.summarize(r) for name, r in drift.items()}
    (row,) = [r for r in step_time.ratios(summary, step_time.TARGETS, drift) if r["metric"] == "seconds_per_step"]
    assert (row["value"], row["paired"], row["passed"]) == (pytest.approx(2.0), pytest.approx(1.0), True)
    table = step_time.table({"summary": {"distill": distill, "hand": hand}, "ratios": rows, "option_ratios": []})
    assert "| distill/hand | 1.250 | 1.125 | 1.000-1.458 | <= 1.02 | FAIL |" in table


# -- every contender runs ----------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["hand", "student_only", "distill", "distill_cached", "distill_channels_last", "distill_bf16", "minimal_lightning"],
)
@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_contender_runs_the_timed_steps(name, tmp_path):
    # bf16-mixed on the small pair (no BatchNorm): the random resnet18 pair on 8x8 inputs reached a non-finite
    # KD at an early step under bf16 in two full `pytest -m slow` runs (CI's, and a fresh clone here), even at
    # lr=0, and never when the test ran alone or with its directory; the cause was not found
    settings = TINY_SMALL_PAIR if name == "distill_bf16" else TINY
    prepare_cache(settings, str(tmp_path))
    result = run_contender(name, settings, str(tmp_path))
    assert RESULT_KEYS <= set(result)
    assert result["contender"] == name
    assert len(result["step_seconds"]) == settings.steps
    assert result["seconds_per_step"] == pytest.approx(sum(result["step_seconds"]) / settings.steps)
    assert result["peak_rss_mb"] >= result["peak_rss_steps_mb"] >= result["rss_before_steps_mb"] * 0.5 > 0
    if name.startswith("distill") or name == "minimal_lightning":
        # checkpointing as the default config does it, at the end of the epoch
        assert result["checkpoints"] == ["best.ckpt", "last.ckpt"]
        from lightning.pytorch.utilities.imports import _RICH_AVAILABLE

        # Lightning's default bar: Rich where rich is installed
        assert result["progress_bar"] == ("RichProgressBar" if _RICH_AVAILABLE else "TQDMProgressBar")


# -- the small pair ---------------------------------------------------------------------


def test_small_pair_models_and_settings():
    from small_pair import SMALL_MODELS

    teacher, student = SMALL_MODELS["cnn1d"](10), SMALL_MODELS["mlp"](10)
    x = torch.randn(7, 40)
    assert teacher(x).shape == student(x).shape == (7, 10)
    # the MLP 40-100-100-10: (40*100 + 100) + (100*100 + 100) + (100*10 + 10) parameters
    assert sum(p.numel() for p in student.parameters()) == 4100 + 10100 + 1010
    settings = step_time.settings_from(step_time.parse_args(["--pair", "small", "--quick"]))
    assert (settings.teacher, settings.student, settings.batch_size, settings.optimizer) == ("cnn1d", "mlp", 100, "adam")
    assert (settings.warmup, settings.steps) == (5, 30) and settings.input_shape == (40,)
    assert step_time.is_small_pair(settings) and not step_time.is_small_pair(TINY)
    # an explicit choice wins over the pair's default
    assert step_time.settings_from(step_time.parse_args(["--pair", "small", "--batch-size", "7"])).batch_size == 7


@pytest.mark.parametrize("name", ["hand", "minimal_lightning", "distill", "distill_cached", "student_only"])
@pytest.mark.slow  # minutes of training on 2 cores: `pytest -m slow` (CI runs it)
def test_small_pair_contenders_run(name, tmp_path):
    prepare_cache(TINY_SMALL_PAIR, str(tmp_path))
    result = run_contender(name, TINY_SMALL_PAIR, str(tmp_path))
    assert len(result["step_seconds"]) == TINY_SMALL_PAIR.steps


@pytest.mark.slow  # minutes of training on 2 cores: `pytest -m slow` (CI runs it)
def test_minimal_lightning_trains_the_same_math_as_hand():
    """Both contenders take the same optimizer steps from the same start: the students end equal."""
    import step_time_contenders as contenders

    finals = {}
    for name in ("hand", "minimal_lightning"):
        captured = {}
        original = contenders.make_models

        def spy(settings, original=original, captured=captured):
            teacher, student = original(settings)
            captured["student"] = student
            return teacher, student

        contenders.make_models = spy
        try:
            run_contender(name, TINY_SMALL_PAIR)
        finally:
            contenders.make_models = original
        finals[name] = captured["student"].state_dict()
    for key, value in finals["hand"].items():
        assert torch.allclose(value, finals["minimal_lightning"][key], atol=1e-5), key


def test_torchdistill_contender_runs():
    pytest.importorskip("torchdistill")
    result = run_contender("torchdistill", TINY)
    assert RESULT_KEYS <= set(result) and len(result["step_seconds"]) == TINY.steps


@pytest.mark.slow
def test_compile_contender_runs(tmp_path):
    result = run_contender("distill_compile", TINY, str(tmp_path))
    assert len(result["step_seconds"]) == TINY.steps


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_cli_runs_contenders_in_subprocesses_and_writes_json(tmp_path):
    out = tmp_path / "result.json"
    command = [
        sys.executable, str(BENCHMARKS / "step_time.py"), "--contenders", "hand", "distill_cached",
        "--reps", "1", "--teacher", "resnet18", "--image-size", "8", "--batch-size", "4",
        "--warmup", "1", "--steps", "2", "--threads", "1", "--json", str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["summary"]) == {"hand", "distill_cached"}
    assert report["settings"]["steps"] == 2 and report["reps"] == 1
    assert report["prepare_cache"]["seconds"] > 0
    assert report["ratios"] == []  # no pair of the targets was run
    for name in ("hand", "distill_cached"):
        (run,) = report["runs"][name]
        assert RESULT_KEYS <= set(run) and run["threads"] == 1
        assert report["summary"][name]["seconds_per_step"] == run["seconds_per_step"]
        assert not math.isnan(run["peak_rss_mb"])
    assert "| hand |" in done.stdout and f"results written to {out}" in done.stdout
