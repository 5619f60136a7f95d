"""distill.cli.teachers: what the console, the report and the summary call a teacher or student."""

from __future__ import annotations

from hydra import compose, initialize_config_dir

from distill.cli.config_directory import config_dir
from distill.cli.teachers import display_name


def names(*overrides):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    return display_name(cfg.teacher), display_name(cfg.student)


def test_hugging_face_models_are_named_after_their_directory_not_their_family():
    assert names("teacher=hf_sequence_classification", "teacher.path=/models/bert",
                 "student=hf_sequence_classification", "student.config.num_hidden_layers=3") == ("bert", "bert (3 layers)")
    assert names("teacher=hf_sequence_classification", "teacher.path=/models/bert", "student=hf_sequence_classification",
                 "student.path=/models/tiny") == ("bert", "tiny")
    assert names("teacher=hf_sequence_classification", "teacher.path=/models/bert",
                 "student=hf_sequence_classification")[1] == "bert (new weights)"


def test_other_models_keep_their_names():
    assert names("teacher=resnet50", "student=wrn_16_2") == ("resnet50", "wrn_16_2")
    assert names("teacher=ensemble")[0] == "ensemble"


def test_a_plain_data_module_passes_the_index_checks_it_yields_indices_itself():
    """A plain LightningDataModule (no with_index) is taken to yield (x, y, index) itself, as CRD's docs say."""
    import lightning as L
    from omegaconf import OmegaConf

    from distill.cli.teachers import check_sample_indices_first
    from distill.losses import CRD, KD

    class Plain(L.LightningDataModule):
        num_classes = 3

    cfg = OmegaConf.create({"teacher": {"cache": False}, "augment": None})
    crd = CRD(num_samples=10, num_negatives=4)
    assert crd.needs_index
    check_sample_indices_first(cfg, Plain(), {"kd": KD()})
    check_sample_indices_first(cfg, Plain(), {"kd": KD(), "crd": crd})
