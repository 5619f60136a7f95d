"""The MNIST-1D paper's models, by name: shapes and parameter counts worked out by hand."""

import pytest
import torch

from distill.errors import DistillError
from distill.models import build_model


def test_the_cnn_has_the_papers_layers_and_parameter_count():
    model = build_model("mnist1d_cnn", 10)
    # conv 1->25 k5 (150 + 25), 25->25 k3 twice (1875 + 25 each), length 40 -> 19 -> 10 -> 5, linear 125->10
    expected = (1 * 25 * 5 + 25) + 2 * (25 * 25 * 3 + 25) + (25 * 5 * 10 + 10)
    assert sum(p.numel() for p in model.parameters()) == expected == 5210
    assert model(torch.randn(3, 1, 40)).shape == (3, 10)
    assert model(torch.randn(3, 40)).shape == (3, 10)  # a signal without its channel dim


def test_the_mlp_gru_and_logistic_models():
    mlp, gru, logistic = (build_model(n, 10) for n in ("mnist1d_mlp", "mnist1d_gru", "mnist1d_logistic"))
    assert sum(p.numel() for p in mlp.parameters()) == (40 * 100 + 100) + (100 * 100 + 100) + (100 * 10 + 10)
    assert sum(p.numel() for p in logistic.parameters()) == 40 * 10 + 10
    hidden = 64  # GRU: 3 gates, input and hidden weights and two biases each
    assert sum(p.numel() for p in gru.parameters()) == 3 * (hidden * 1 + hidden * hidden + 2 * hidden) + hidden * 10 + 10
    x = torch.randn(4, 1, 40)
    for model in (mlp, gru, logistic):
        assert model(x).shape == (4, 10)
    assert build_model("mnist1d_mlp", 5, hidden=32)(x).shape == (4, 5)


def test_feature_layers_are_named_like_the_other_families():
    names = dict(build_model("mnist1d_cnn", 10).named_modules())
    assert {"layer1", "layer2", "layer3", "features", "fc"} <= set(names)


def test_pretrained_weights_and_unknown_options_are_one_line_errors():
    with pytest.raises(DistillError, match="no pretrained weights"):
        build_model("mnist1d_cnn", 10, weights="DEFAULT")
    with pytest.raises(DistillError, match="does not take"):
        build_model("mnist1d_mlp", 10, depth=3)
    with pytest.raises(DistillError, match="mnist1d_mlp"):
        build_model("mnist1d_mpl", 10)  # a typo gets the close match
