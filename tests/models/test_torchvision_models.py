import urllib.error

import pytest
import torch
from torchvision import models

from distill.errors import DistillError
from distill.models import build_model


def test_any_torchvision_classifier_by_name():
    model = build_model("mobilenet_v3_small", num_classes=7)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_unknown_name_lists_close_matches():
    with pytest.raises(DistillError, match=r"unknown model 'resnet5'.*did you mean.*resnet50"):
        build_model("resnet5", num_classes=10)


def test_unknown_weights_name():
    with pytest.raises(DistillError, match="unknown weights 'IMAGENET'.*IMAGENET1K_V1"):
        build_model("resnet18", num_classes=1000, weights="IMAGENET")


def test_pretrained_weights_with_other_class_count():
    with pytest.raises(DistillError, match="predict 1000 classes but the data has 10"):
        build_model("resnet18", num_classes=10, weights="DEFAULT")


def test_pretrained_weights_offline_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(DistillError, match=r"could not download pretrained weights .*\$TORCH_HOME/hub/checkpoints"):
        build_model("resnet18", num_classes=1000, weights="DEFAULT")


def test_pretrained_weights_load_from_torch_home_without_network(tmp_path, monkeypatch):
    """The real torchvision loading path, fed a weights file we write where torch.hub looks."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("tried the network"))
    weights = models.ResNet18_Weights.DEFAULT
    reference = models.resnet18(num_classes=1000)
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(reference.state_dict(), checkpoints / weights.url.rsplit("/", 1)[1])

    model = build_model("resnet18", num_classes=1000, weights="DEFAULT")
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
