import hashlib

import torch
from torch import nn

from distill.models import count_parameters, weights_sha256


def test_hash_changes_with_any_parameter_or_buffer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    first = weights_sha256(model)
    assert first == weights_sha256(model) and len(first) == 64
    with torch.no_grad():
        model[1].running_mean[0] += 1e-6
    assert weights_sha256(model) != first


def test_hash_of_a_known_state():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    expected = hashlib.sha256(b"weight|torch.float32|(1, 1)|" + torch.tensor([1.0]).numpy().tobytes()).hexdigest()
    assert weights_sha256(model) == expected


def test_count_parameters():
    assert count_parameters(nn.Linear(3, 2)) == 3 * 2 + 2
