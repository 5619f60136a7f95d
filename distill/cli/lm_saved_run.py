"""An LM run's saved student for the commands: ``distill.evaluate`` (the LM report against the run's teacher)
and ``distill.export`` (a ``save_pretrained`` directory with its tokenizer)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from distill.cli.lm_models import lm_model_name, prepare_lm_model, student_base_again
from distill.cli.saved_export import output_path
from distill.cli.saved_run import find_run_config, load_run_config
from distill.cli.teachers import is_student_base
from distill.errors import DistillError
from distill.lm.vocabulary import reconcile_vocabularies
from distill.models.causal_lm import load_tokenizer
from distill.models.pretrained_export import PRETRAINED_FORMAT
from distill.report.lm_cross_report import cross_tokenizer_report
from distill.report.lm_report import language_model_report

log = logging.getLogger("distill")



def is_saved_language_model(path: Any) -> bool:
    """Whether ``path`` is a ``save_pretrained`` directory of a causal LM (an LM run's ``student_model/``)."""
    folder = Path(str(path)).expanduser()
    return folder.is_dir() and (folder / "config.json").is_file()


def evaluate_language_model(cfg: DictConfig, overrides: list[str], out_dir: Path) -> dict[str, Any]:
    """``python -m distill.evaluate checkpoint=RUN/student_model``: the LM report of a saved student against
    its run's teacher (from the run's cache), on the run's data; ``per_sample=true`` adds ``per_sequence.csv``."""
    import csv

    from distill.models.causal_lm import load_causal_lm
    from distill.report.lm_metrics import per_sequence_losses

    folder = Path(str(cfg.checkpoint)).expanduser()
    found = find_run_config(folder / "config.json")
    if found is None:
        raise DistillError(f"{folder} is not inside a distill run directory (no .hydra/config.yaml beside it)")
    run_cfg = load_run_config(found)
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    if "cache_dir" in given:
        run_cfg.cache_dir = cfg.cache_dir
    datamodule = instantiate(run_cfg.data)
    cross = bool(getattr(datamodule, "cross_tokenizer", False))
    if cross and cfg.get("per_sample"):
        raise DistillError("per_sample=true compares the two models token by token, which a teacher with another "
                           "tokenizer does not allow; leave per_sample out for this run")
    teacher_data = datamodule.teacher_data()  # the teacher's own tokens (itself, unless across tokenizers)
    if is_student_base(run_cfg.teacher):
        teacher = student_base_again(run_cfg, datamodule, folder.parent / "summary.json")
    else:
        teacher = prepare_lm_model(run_cfg, run_cfg.teacher, teacher_data, out_dir, "teacher",
                                   allow_training=bool(cfg.get("train_teacher")))
    if teacher.origin == "cache" and teacher.model is not None:
        log.info("Teacher read from the cache: %s", teacher.source)
    student, tokenizer = load_causal_lm(str(folder), {}, {}), load_tokenizer(str(folder))
    student_name = folder.parent.name + "/" + folder.name
    files = {"json": str(out_dir / "report_lm.json"), "markdown": str(out_dir / "report_lm.md")}
    if cross:  # two vocabularies: each model measured on its own tokens, as the run's report does
        report = cross_tokenizer_report({"teacher": (lm_model_name(run_cfg.teacher), teacher.model, teacher_data),
                                         "student": (student_name, student, datamodule)}, out_dir)
    else:
        teacher_model, student_model, note = reconcile_vocabularies(teacher.model, student, datamodule.tokenizer, tokenizer)
        models = {"teacher": (lm_model_name(run_cfg.teacher), teacher_model), "student": (student_name, student_model)}
        report = language_model_report(models, datamodule, out_dir, notes=[note] if note else [])
    if cfg.get("per_sample"):
        rows = per_sequence_losses(student_model, teacher_model, datamodule.test_dataloader())
        with open(out_dir / "per_sequence.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        files["per_sequence"] = str(out_dir / "per_sequence.csv")
    print((out_dir / "report_lm.md").read_text(), flush=True)
    print(f"evaluation written to {', '.join(files.values())}", flush=True)
    return {**report, "files": files}


def export_saved_language_model(cfg: DictConfig, saved: Any, requested: str | None, default_out: Path,
                                meta: dict[str, Any]) -> dict[str, Any]:
    """An LM run's student as a ``save_pretrained`` directory with its tokenizer, checked by loading it back.

    ``saved`` is :func:`distill.cli.saved_run.load_saved_model`'s; the directory is ``cfg.out``, else ``default_out``.
    """
    if requested not in (None, PRETRAINED_FORMAT):
        raise DistillError(
            f"format={requested} exports classifiers; {saved.checkpoint} holds a language model, which exports as "
            f"format={PRETRAINED_FORMAT} (a save_pretrained directory with its tokenizer)"
        )
    from distill.lm.export import export_language_model
    from distill.report.measurement import evaluation_loader, example_input

    model_cfg = saved.run_cfg[saved.role] if saved.run_cfg is not None else {}
    tokenizer = load_tokenizer(str(model_cfg["path"])) if model_cfg.get("path") else saved.datamodule.tokenizer
    example = example_input(evaluation_loader(saved.datamodule))
    out = output_path(cfg, default_out)
    return export_language_model(saved.model, tokenizer, out, example or {}, tolerance=cfg.get("tolerance"), meta=meta)
