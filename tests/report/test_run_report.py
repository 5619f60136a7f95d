import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from distill.report.run_report import distillation_report


class Lookup(nn.Module):
    """Returns the row of ``table`` named by the first input feature (a sample id)."""

    def __init__(self, table):
        super().__init__()
        self.register_buffer("table", torch.tensor(table))

    def forward(self, x):
        return self.table[x[:, 0].long()]


def test_yes_no_heads_report_decision_agreement_and_no_accuracy(tmp_path):
    x = torch.tensor([[0.0], [1.0]])
    targets = torch.tensor([[1.0, -1.0], [0.0, 1.0]])  # yes/no targets, one unknown
    teacher = Lookup([[2.0, -1.0], [-3.0, 0.5]])  # decisions: yes no / no yes
    student = Lookup([[1.0, 1.0], [-1.0, 4.0]])  # decisions: yes yes / no yes -> 3 of 4 agree
    report = distillation_report(
        {"teacher": ("t", teacher), "student": ("s", student)},
        DataLoader(TensorDataset(x, targets), batch_size=2), tmp_path,
    )
    rows = {row["role"]: row for row in report["rows"]}
    assert rows["student"]["agreement"] == 0.75
    assert rows["student"]["accuracy"] is None and rows["teacher"]["accuracy"] is None
    assert "reliability" not in report["figures"]
