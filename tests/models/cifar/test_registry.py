"""The CIFAR networks: parameter counts of the literature, shapes, names of the feature layers, training."""

from __future__ import annotations

import itertools

import pytest
import torch

from distill.errors import DistillError
from distill.models import build_model, check_model_name
from distill.models.cifar import CIFAR_MODELS

# Parameters with 100 classes, in millions, as the benchmark's papers round them. Every value was
# also counted by hand from the architecture definitions of the CRD benchmark's code
# (HobbitLong/RepDistiller, models/: resnet.py, wrn.py, vgg.py with BatchNorm as its model_dict
# uses it, mobilenetv2.py "mobile_half", ShuffleNetv1.py, ShuffleNetv2.py net_size 1) and agrees
# with these to the last digit shown. vgg8 counts 3,965,028 (the exact sum is tested below): 3.97M
# rounded; tables that truncate print 3.96M.
PUBLISHED_MILLIONS = {
    "resnet8": 0.08,
    "resnet14": 0.18,
    "resnet20": 0.28,
    "resnet32": 0.47,
    "resnet44": 0.67,
    "resnet56": 0.86,
    "resnet110": 1.74,
    "resnet8x4": 1.23,
    "resnet32x4": 7.43,
    "wrn_16_2": 0.70,
    "wrn_40_1": 0.57,
    "wrn_40_2": 2.26,
    "vgg8": 3.97,
    "vgg13": 9.46,
    "mobilenetv2": 0.81,
    "shufflenetv1": 0.95,
    "shufflenetv2": 1.36,
}

#: the stages each family names, for the feature-based losses (layer1..3 in every family)
FEATURE_LAYERS = {
    "resnet": ["stem", "layer1", "layer2", "layer3", "avgpool", "fc"],
    "wrn": ["stem", "layer1", "layer2", "layer3", "norm", "avgpool", "fc"],
    "vgg": ["layer1", "pool1", "layer2", "pool2", "layer3", "pool3", "layer4", "layer5", "avgpool", "fc"],
    "mobilenetv2": ["stem", *(f"layer{i}" for i in range(1, 8)), "head", "avgpool", "fc"],
    "shufflenetv1": ["stem", "layer1", "layer2", "layer3", "avgpool", "fc"],
    "shufflenetv2": ["stem", "layer1", "layer2", "layer3", "head", "avgpool", "fc"],
}


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_name_of_the_benchmark_is_registered():
    assert set(CIFAR_MODELS) == set(PUBLISHED_MILLIONS)


@pytest.mark.parametrize("name", sorted(PUBLISHED_MILLIONS))
def test_parameter_count_matches_the_literature(name):
    millions = count(build_model(name, num_classes=100)) / 1e6
    assert round(millions, 2) == PUBLISHED_MILLIONS[name], f"{name}: {millions:.4f}M"


def resnet_parameters(blocks: int, num_classes: int) -> int:
    """Parameters of a 16/32/64-channel CIFAR ResNet with ``blocks`` per stage, counted by layer."""

    def conv(i: int, o: int, k: int = 3) -> int:
        return i * o * k * k

    def bn(c: int) -> int:
        return 2 * c

    stem = conv(3, 16) + bn(16)
    stage1 = blocks * (2 * conv(16, 16) + 2 * bn(16))
    # the first block of stages 2 and 3 halves the map and projects the shortcut with a 1x1 conv-BN
    stage2 = conv(16, 32) + conv(32, 32) + 2 * bn(32) + conv(16, 32, 1) + bn(32)
    stage2 += (blocks - 1) * (2 * conv(32, 32) + 2 * bn(32))
    stage3 = conv(32, 64) + conv(64, 64) + 2 * bn(64) + conv(32, 64, 1) + bn(64)
    stage3 += (blocks - 1) * (2 * conv(64, 64) + 2 * bn(64))
    return stem + stage1 + stage2 + stage3 + 64 * num_classes + num_classes


@pytest.mark.parametrize("depth", [8, 14, 20, 32, 44, 56, 110])
@pytest.mark.parametrize("num_classes", [10, 100])
def test_resnet_counts_equal_the_layer_by_layer_sum(depth, num_classes):
    assert count(build_model(f"resnet{depth}", num_classes)) == resnet_parameters((depth - 2) // 6, num_classes)


def test_vgg8_count_equals_the_layer_by_layer_sum():
    widths = [3, 64, 128, 256, 512, 512]
    # 3x3 convolutions with bias, BatchNorm after each, then a 512 -> 100 classifier
    expected = sum(i * o * 9 + o + 2 * o for i, o in itertools.pairwise(widths)) + 512 * 100 + 100
    assert count(build_model("vgg8", 100)) == expected == 3_965_028


def family(name: str) -> str:
    for prefix in ("resnet", "wrn", "vgg"):
        if name.startswith(prefix):
            return prefix
    return name


@pytest.mark.parametrize("name", sorted(PUBLISHED_MILLIONS))
@pytest.mark.parametrize("size", [32, 8])
def test_forward_shapes_and_named_layers(name, size):
    torch.manual_seed(0)
    model = build_model(name, num_classes=7).eval()
    names = dict(model.named_children())
    assert list(names) == FEATURE_LAYERS[family(name)]
    shapes = {}
    hooks = [names[n].register_forward_hook(lambda m, i, o, n=n: shapes.update({n: o.shape})) for n in names]
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    for hook in hooks:
        hook.remove()
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    assert shapes["avgpool"][0] == 2 and len(shapes["avgpool"]) == 2  # pooled vector
    # the three stages every family shares shrink the map (or keep it, for layer1 of the ResNets)
    heights = [shapes[f"layer{i}"][-1] for i in (1, 2, 3)]
    assert heights == sorted(heights, reverse=True)


@pytest.mark.parametrize(
    "name, expected",
    [
        # at 32x32: resnets keep 32 in layer1, then 16 and 8 (He et al. 2016, section 4.2)
        ("resnet20", {"layer1": (16, 32), "layer2": (32, 16), "layer3": (64, 8)}),
        ("resnet8x4", {"layer1": (64, 32), "layer2": (128, 16), "layer3": (256, 8)}),
        ("wrn_40_2", {"layer1": (32, 32), "layer2": (64, 16), "layer3": (128, 8)}),
        ("vgg13", {"layer1": (64, 32), "layer3": (256, 8), "layer5": (512, 4)}),
        ("mobilenetv2", {"stem": (16, 16), "layer2": (12, 16), "layer7": (160, 2), "head": (1280, 2)}),
        ("shufflenetv1", {"layer1": (240, 16), "layer2": (480, 8), "layer3": (960, 4)}),
        ("shufflenetv2", {"layer1": (116, 16), "layer3": (464, 4), "head": (1024, 4)}),
    ],
)
def test_stage_channels_and_sizes_at_32(name, expected):
    model = build_model(name, num_classes=100).eval()
    seen = {}
    for layer in expected:
        getattr(model, layer).register_forward_hook(lambda m, i, o, n=layer: seen.update({n: tuple(o.shape[1:3])}))
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    assert seen == expected


# one per family: deeper members are the same code with more blocks
@pytest.mark.parametrize("name", ["resnet8", "wrn_16_2", "vgg8", "mobilenetv2", "shufflenetv1", "shufflenetv2"])
def test_one_training_step_reaches_every_parameter_and_lowers_the_loss(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=5).train()
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 5
    # a small plain step on one fixed batch: to first order the loss on that batch must fall
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    # every parameter is on the path to the loss (its gradient may be 0 where a ReLU is off)
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    with torch.no_grad():
        after = torch.nn.functional.cross_entropy(model(x), y)
    assert after.item() < loss.item()


def test_typo_gets_close_matches():
    with pytest.raises(DistillError, match=r"unknown model 'resnet8x' \(did you mean resnet8x4"):
        check_model_name("resnet8x")


def test_pretrained_weights_and_options_are_refused_in_one_line():
    with pytest.raises(DistillError, match="has no pretrained weights .*teacher.checkpoint") as error:
        build_model("resnet20", 100, weights="DEFAULT")
    assert "\n" not in str(error.value)
    with pytest.raises(DistillError, match=r"takes no options, got \['depth'\]"):
        build_model("resnet20", 100, depth=3)
