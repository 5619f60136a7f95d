"""The LM job with generation in the loop, tiny and in-process: ``experiment=lm_seq_kd`` and ``experiment=lm_gkd``
(the config composed as ``python -m distill.run`` composes it); one subprocess run of the real command.
The runs train a tiny teacher first and write the report: 9-16 s each on the shared 2 cores, so slow-marked;
the configs themselves are checked fast (composed and instantiated)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import open_dict

from distill.cli.config_directory import config_dir
from distill.cli.language_model import run_language_model
from distill.errors import DistillError

PAIRS = [{"prompt": f"The {word} statement", "completion": " is a block of code."}
         for word in ("for", "while", "if", "assert", "with", "try", "def", "class", "return", "import")]


def tiny(tmp_path, tiny_tokenizer_dir):
    """Overrides: 10 prompt/completion records, 16-token blocks, tiny GPT-2s, a few batches, no speed measurements."""
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in PAIRS))
    return [
        f"data.train_file={path}", f"data.tokenizer={tiny_tokenizer_dir}", "data.block_size=16", "data.batch_size=4",
        "data.val_fraction=0.2", "data.test_fraction=0.2",
        "teacher.config.n_layer=1", "teacher.config.n_embd=16", "teacher.config.n_head=2", "teacher.train.epochs=1",
        "student.config.n_layer=1", "student.config.n_embd=8", "student.config.n_head=2", "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false", "+report.speed=false", "logger=csv",
        f"cache_dir={tmp_path / 'cache'}",
    ]


def run_in_process(tmp_path, overrides, run="run"):
    """What ``python -m distill.run`` does for an LM run, without the subprocess: compose, set Hydra's run directory, run."""
    run_dir = tmp_path / run
    run_dir.mkdir()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
    HydraConfig.instance().set_config(cfg)
    try:
        return cfg, run_language_model(cfg, instantiate(cfg.data), run_dir, time.perf_counter())
    finally:
        HydraConfig.instance().cfg = None


@pytest.mark.parametrize("experiment, node", [("lm_gkd", "on_policy"), ("lm_seq_kd", "sequence_kd")])
def test_the_generation_experiments_compose_to_real_classes(experiment, node):
    from distill.lm.generation import GenerationSettings
    from distill.lm.on_policy import OnPolicy
    from distill.lm.sequence_kd import SequenceKD

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={experiment}"])
    made = instantiate(cfg[node], **({"eos_token_id": 1} if node == "on_policy" else {}))
    assert isinstance(made, {"on_policy": OnPolicy, "sequence_kd": SequenceKD}[node])
    assert isinstance(made.generation, GenerationSettings) and made.generation.prompt_length == 16
    assert cfg.teacher.config.n_layer == 4 and cfg.data._target_ == "distill.data.LanguageModelDataModule"  # experiment=lm's
    if node == "on_policy":
        assert made.lmbda == 0.5 and made.generation.do_sample and cfg.loss.ce is None and cfg.loss.jsd.beta == 0.5
    else:
        assert not made.generation.do_sample and list(cfg.loss) == ["ce"]


@pytest.mark.slow
def test_experiment_lm_seq_kd_trains_on_the_teachers_cached_completions(tmp_path, tiny_tokenizer_dir):
    overrides = ["experiment=lm_seq_kd", "sequence_kd.generation.prompt_length=null",
                 "sequence_kd.generation.max_new_tokens=6", *tiny(tmp_path, tiny_tokenizer_dir)]
    cfg, summary = run_in_process(tmp_path, overrides)
    assert summary["task"] == "language_model" and list(summary["loss"]) == ["ce"]
    (cached,) = (tmp_path / "cache" / "sequence_kd").glob("*.pt")  # the completions of this teacher, cached once
    manifest = torch.load(cached, weights_only=True)["manifest"]
    assert manifest["teacher_sha256"] == summary["teacher"]["sha256"] and manifest["prompts"] == 6  # 10 records, 2 + 2 held out
    assert manifest["generation"]["max_new_tokens"] == 6 and manifest["generation"]["do_sample"] is False


@pytest.mark.slow
def test_experiment_lm_gkd_distils_on_the_students_samples(tmp_path, tiny_tokenizer_dir):
    overrides = ["experiment=lm_gkd", "on_policy.lmbda=1.0", "on_policy.generation.prompt_length=null",
                 "on_policy.generation.max_new_tokens=4", "loss.jsd.temperature=2.0", *tiny(tmp_path, tiny_tokenizer_dir)]
    cfg, summary = run_in_process(tmp_path, overrides)
    assert list(summary["loss"]) == ["jsd"] and "temperature=2.0" in summary["loss"]["jsd"]
    assert summary["teacher"]["sha256"] == summary["teacher"]["sha256_after"]
    with pytest.raises(DistillError, match="reads no teacher"):  # cross-entropy kept on the student's own samples
        run_in_process(tmp_path, [*overrides, "loss.ce={_target_:distill.losses.TokenCrossEntropy,weight:0.1}"], run="ce")


@pytest.mark.slow
def test_python_m_distill_run_experiment_lm_gkd(tmp_path, tiny_tokenizer_dir):
    overrides = ["experiment=lm_gkd", "on_policy.generation.prompt_length=2", *tiny(tmp_path, tiny_tokenizer_dir)]
    result = subprocess.run([sys.executable, "-m", "distill.run", *overrides, f"hydra.run.dir={tmp_path / 'run'}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["task"] == "language_model"
