"""timm:<name> models: the real timm when installed, a clear line when not or when offline."""

from __future__ import annotations

import builtins
import sys

import pytest
import torch

from distill.errors import DistillError
from distill.models import build_model, check_model_name


@pytest.fixture
def timm():
    """The real package (the 'timm' extra); the last test covers its absence."""
    return pytest.importorskip("timm")


def test_timm_model_is_built_without_weights_with_the_asked_classes(timm):
    model = build_model("timm:test_resnet", num_classes=10)
    assert isinstance(model, timm.models.ResNet)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    check_model_name("timm:test_resnet")


def test_options_go_to_create_model(timm):
    model = build_model("timm:test_vit", num_classes=3, img_size=32)
    assert model.patch_embed.img_size == (32, 32)
    with pytest.raises(DistillError, match=r"timm model 'test_resnet' rejects the options \['bogus_option'\]"):
        build_model("timm:test_resnet", 3, bogus_option=1)


def test_unknown_name_and_tag_get_one_line_hints(timm):
    with pytest.raises(DistillError, match=r"unknown timm model 'test_resnt' \(did you mean test_resnet"):
        build_model("timm:test_resnt", 10)
    with pytest.raises(DistillError, match=r"unknown timm model 'test_resnt'"):
        check_model_name("timm:test_resnt")  # what a run calls before any training
    with pytest.raises(DistillError, match="no such pretrained tag"):
        build_model("timm:resnet18.bogus", 10)
    with pytest.raises(DistillError, match="weights are DEFAULT or unset, got 'IMAGENET1K_V1'"):
        build_model("timm:resnet18", 1000, weights="IMAGENET1K_V1")


def test_pretrained_weights_for_other_classes_are_refused_before_any_download(timm):
    with pytest.raises(DistillError, match="predict 1000 classes but the data has 10"):
        build_model("timm:resnet18", 10, weights="DEFAULT")


def test_offline_download_fails_with_a_clear_message(timm, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(DistillError, match="could not download timm's pretrained weights for 'test_resnet'") as error:
        build_model("timm:test_resnet", 1000, weights="DEFAULT")
    assert "\n" not in str(error.value)


def test_without_timm_the_error_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_timm(name, *args, **kwargs):
        if name == "timm" or name.startswith("timm."):
            raise ImportError("No module named 'timm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "timm", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_timm)
    with pytest.raises(DistillError, match=r"pip install 'distill\[timm\]'") as error:
        build_model("timm:resnet18", 10)
    assert "\n" not in str(error.value)
