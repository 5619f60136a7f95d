"""``teacher.cache=true`` for ``experiment=lm``: the losses it serves, and a second run reusing the cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from distill.cli.lm_teacher_cache import cached_loss_settings
from distill.errors import DistillError
from distill.losses import TokenCrossEntropy, TokenHiddenStates, TokenJSD, TokenKL


def test_the_terms_that_read_the_teacher_set_k_and_temperature():
    loss = {"kd": TokenKL(temperature=2.0, top_k=16), "jsd": TokenJSD(temperature=2.0, top_k=16), "ce": TokenCrossEntropy()}
    assert cached_loss_settings(loss) == (16, 2.0)


@pytest.mark.parametrize("loss, message", [
    ({"kd": TokenKL()}, r"loss.kd.top_k=null asks for the dense loss; give loss.kd.top_k=K"),
    ({"kd": TokenKL(top_k=8), "jsd": TokenJSD(top_k=4)}, "holds one top_k and one temperature"),
    ({"kd": TokenKL(top_k=8, temperature=1.0), "jsd": TokenJSD(top_k=8, temperature=2.0)}, "holds one top_k"),
    ({"ce": TokenCrossEntropy()}, "no loss term reads the teacher"),
    ({"kd": TokenKL(top_k=8), "hidden": TokenHiddenStates("transformer.h.0", "transformer.h.0")},
     r"loss term 'hidden' \(TokenHiddenStates\) reads more of the teacher; remove it \(~loss.hidden\)"),
])
def test_a_loss_the_cache_cannot_serve_is_a_one_line_error(loss, message):
    with pytest.raises(DistillError, match=message) as error:
        cached_loss_settings(loss)
    assert "\n" not in str(error.value)


@pytest.mark.slow  # two tiny LM runs in one process (~1-2 min on 2 shared cores)
def test_a_second_run_reuses_the_cache_from_its_first_epoch(tmp_path):
    from pydoc_data.topics import topics

    keys = sorted(topics)
    for split, part in (("train", keys[:3]), ("val", keys[6:7]), ("test", keys[8:9])):
        (tmp_path / f"{split}.txt").write_text("\n\n".join(topics[k][:1500] for k in part))
    # a sweep of two students: both jobs share the teacher and its top-k outputs
    result = subprocess.run(
        [sys.executable, "-m", "distill.run", "-m", "experiment=lm", *(f"data.{s}_file={tmp_path / s}.txt" for s in
         ("train", "val", "test")), "data.block_size=32", "data.vocab_size=300", "teacher.config.n_layer=1",
         "teacher.config.n_embd=16", "teacher.config.n_head=2", "teacher.train.epochs=1", "student.config.n_embd=16,8",
         "student.config.n_head=2", "trainer.max_epochs=2", "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1",
         "trainer.enable_progress_bar=false", "+report.speed=false", "teacher.cache=true", "loss.kd.top_k=8",
         f"cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = (json.loads((tmp_path / "sweep" / job / "summary.json").read_text())["teacher_cache"] for job in "01")
    assert first["origin"] == "filled" and first["complete"] and first["teacher_batches"] > 0
    assert second["origin"] == "reused" and second["teacher_batches"] == 0  # no teacher call in any epoch
    assert first["directory"] == second["directory"] and first["top_k"] == 8
    # 8 ids of 9 bits (9 bytes), 8 float16 (16 bytes), one float32 (4 bytes), plus the files' headers
    assert 29 <= first["bytes_per_token"] < 40
    manifest = json.loads((tmp_path / "cache" / "lm_teacher_outputs" / os.path.basename(first["directory"])
                           / "manifest.json").read_text())
    assert manifest["top_k"] == 8 and manifest["temperature"] == 1.0 and manifest["log_prob_dtype"] == "float16"


@pytest.mark.slow  # one tiny LM run (~1 min on 2 shared cores)
def test_a_run_that_stops_inside_the_first_epoch_keeps_no_cache_and_says_so(tmp_path):
    from pydoc_data.topics import topics

    keys = sorted(topics)
    for split, part in (("train", keys[:3]), ("val", keys[6:7]), ("test", keys[8:9])):
        (tmp_path / f"{split}.txt").write_text("\n\n".join(topics[k][:1500] for k in part))
    result = subprocess.run(
        [sys.executable, "-m", "distill.run", "experiment=lm", *(f"data.{s}_file={tmp_path / s}.txt" for s in
         ("train", "val", "test")), "data.block_size=32", "data.vocab_size=300", "teacher.config.n_layer=1",
         "teacher.config.n_embd=16", "teacher.config.n_head=2", "teacher.train.epochs=1", "student.config.n_embd=8",
         "student.config.n_head=2", "trainer.max_epochs=1", "+trainer.limit_train_batches=1",
         "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1", "trainer.enable_progress_bar=false",
         "+report.speed=false", "teacher.cache=true", "loss.kd.top_k=8", f"cache_dir={tmp_path / 'cache'}",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    cache = json.loads((tmp_path / "run" / "summary.json").read_text())["teacher_cache"]
    assert cache["complete"] is False and cache["bytes_per_token"] is None and cache["teacher_batches"] == 1
    assert not os.path.exists(cache["directory"])  # an incomplete cache is never kept as if complete
