"""Peak CPU memory of the token-level KD loss (forward + backward): distill's chunked loss vs the hand-written one.

    python benchmarks/lm_loss_memory.py                  # 4 x 257 tokens, vocabulary 16,384, and 8 x 513 x 32,768
    python benchmarks/lm_loss_memory.py --quick          # tiny sizes: checks the mechanics in seconds
    python benchmarks/lm_loss_memory.py --budget-mib 1024

The contenders take the same bf16 student and teacher logits ``[B, T, V]`` and labels and compute
T² · KL(teacher || student) over the loss-carrying next tokens, then its gradient:

- ``hand``: the hand loop of ``benchmarks/lm_step.py``, written out: the whole float32 softmax at once;
- ``distill_unchunked``: ``distill.losses.functional.token_kl_loss(..., chunk_size=None)``;
- ``distill_chunked``: the same with ``chunk_size=128`` (the default of ``TokenKL``).

Each contender and repetition runs in a fresh process, so that its peak resident memory (``VmHWM``) is
its own; the number reported is the peak above the resident memory once the inputs and the logits'
gradient buffer exist (both written, so resident). Medians, min-max over ``--repeats`` and the ratios
to ``hand`` are printed, and whether each fits in ``--budget-mib`` above the inputs; one JSON line at the
end holds every number. Memory, unlike time, does not depend on what else runs on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CONTENDERS = ("hand", "distill_unchunked", "distill_chunked")
#: (batch, tokens, vocabulary)
SIZES = ((4, 257, 16_384), (8, 513, 32_768))
QUICK_SIZES = ((2, 33, 1_024),)
TEMPERATURE = 2.0
CHUNK_SIZE = 128


def _kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(name: str, batch: int, tokens: int, vocabulary: int) -> None:
    """Build the inputs, run one forward + backward of ``name``, print the peak above the inputs in MiB."""
    import torch
    import torch.nn.functional as F

    from distill.losses.functional import token_kl_loss

    torch.manual_seed(0)
    student = torch.randn(batch, tokens, vocabulary, dtype=torch.bfloat16).requires_grad_()
    teacher = torch.randn(batch, tokens, vocabulary, dtype=torch.bfloat16)
    labels = torch.randint(0, vocabulary, (batch, tokens))
    labels[:, : tokens // 4] = -100  # a prompt that carries no loss
    student.grad = torch.zeros_like(student).fill_(0)  # the gradient's pages resident before the baseline (written)
    before = _kib("VmRSS")
    if name == "hand":
        targets = labels[:, 1:]
        mask = targets != -100
        s, t = student[:, :-1][mask].float(), teacher[:, :-1][mask].float()
        log_p = F.log_softmax(t / TEMPERATURE, -1)
        log_q = F.log_softmax(s / TEMPERATURE, -1)
        loss = (log_p.exp() * (log_p - log_q)).sum(-1).mean() * TEMPERATURE**2
    else:
        chunk = CHUNK_SIZE if name == "distill_chunked" else None
        loss = token_kl_loss(student, teacher, labels, temperature=TEMPERATURE, chunk_size=chunk)
    loss.backward()
    print(json.dumps({"peak_above_inputs_mib": (_kib("VmHWM") - before) / 1024, "loss": float(loss)}))


def measure(name: str, size: tuple[int, int, int]) -> dict[str, float]:
    result = subprocess.run([sys.executable, __file__, "--child", name, *map(str, size)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the mechanics only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget-mib", type=float, default=1024.0, help="the memory a loss may take above its inputs")
    parser.add_argument("--child", nargs=4, metavar=("NAME", "B", "T", "V"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], *map(int, args.child[1:]))
        return
    results = []
    for size in QUICK_SIZES if args.quick else SIZES:
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in CONTENDERS}
        for repeat in range(args.repeats):
            order = CONTENDERS if repeat % 2 == 0 else CONTENDERS[::-1]
            for name in order:
                runs[name].append(measure(name, size))
        rows = {}
        for name, measured in runs.items():
            peaks = [m["peak_above_inputs_mib"] for m in measured]
            rows[name] = {"median_mib": statistics.median(peaks), "min_mib": min(peaks), "max_mib": max(peaks),
                          "loss": measured[0]["loss"], "fits_budget": statistics.median(peaks) <= args.budget_mib}
        hand = rows["hand"]["median_mib"]
        for row in rows.values():
            row["ratio_to_hand"] = row["median_mib"] / hand if hand > 0 else None
        b, t, v = size
        print(f"B x T x V = {b} x {t} x {v} (bf16 logits {b * t * v * 2 / 2**20:.0f} MiB each), budget {args.budget_mib:.0f} MiB:")
        for name, row in rows.items():
            print(f"  {name:<18} peak above inputs {row['median_mib']:8.1f} MiB (min {row['min_mib']:.1f}, max "
                  f"{row['max_mib']:.1f}), {row['ratio_to_hand']:.2f}x hand, "
                  f"{'fits' if row['fits_budget'] else 'does not fit'} the budget, loss {row['loss']:.6f}")
        results.append({"size": list(size), "rows": rows})
    print(json.dumps({"benchmark": "lm_loss_memory", "budget_mib": args.budget_mib, "chunk_size": CHUNK_SIZE,
                      "repeats": args.repeats, "results": results}))


if __name__ == "__main__":
    main()
