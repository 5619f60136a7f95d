"""distill's token-level KD step vs a hand-written PyTorch loop doing the same math, on the same tiny GPT pair.

    python benchmarks/lm_step.py                 # 4 x 256 tokens, vocabulary 8192, 20 timed steps
    python benchmarks/lm_step.py --quick         # a mechanics check in seconds (no meaningful timing)
    python benchmarks/lm_step.py --on-policy [--quick] [--lmbda 1.0] [--new-tokens 32]
                                                 # GKD's on-policy step vs the teacher-forced one

Both contenders run the same step: the frozen teacher's forward pass without
gradients, the student's forward pass, 0.9 · T² · KL(teacher || student) + 0.1 ·
CE over the loss-carrying next tokens, backward, an AdamW step. distill's is
``DistillationModule.training_step`` with ``TokenKL`` and ``TokenCrossEntropy``
(chunked over tokens); the hand loop builds the whole float32 softmax at once.
Steps are interleaved (A, B, A, B, ...) so that machine noise hits both alike;
the median step time and its ratio are printed, and on a GPU the peak memory of
each step (``torch.cuda.max_memory_allocated``) and its ratio. One JSON line at
the end holds every number.

``--on-policy`` compares two ``DistillationModule`` steps with the same JSD(0.5)
loss instead: teacher-forced on the batch, and on-policy (GKD) with probability
``--lmbda`` per sample of the student generating ``--new-tokens`` tokens (sampled)
after the batch's prompt (its first quarter) before both models score it. Like
for like: in this mode the batch's labels carry loss on the ``--new-tokens``
tokens after the prompt only, so that both contenders score rows of the same
length with the same number of loss tokens (an on-policy row is its prompt, the
generated tokens and padding); each prints its loss tokens per step. The
difference is the cost of generation.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from distill.lm.on_policy import OnPolicy

KD_WEIGHT, CE_WEIGHT, TEMPERATURE = 0.9, 0.1, 2.0


@dataclass
class Settings:
    batch: int = 4
    block: int = 256
    vocab: int = 8192
    teacher_layers: int = 4
    student_layers: int = 2
    width: int = 128
    chunk_size: int | None = 256
    warmup: int = 3
    steps: int = 20
    threads: int | None = None
    seed: int = 0
    lmbda: float = 1.0
    new_tokens: int = 32


QUICK = Settings(batch=2, block=16, vocab=300, teacher_layers=2, student_layers=1, width=32, chunk_size=8, warmup=1, steps=2,
                 new_tokens=4)


def gpt2(settings: Settings, layers: int) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=settings.vocab, n_layer=layers, n_embd=settings.width, n_head=4,
                        n_positions=settings.block, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config)


def make_batch(settings: Settings, device: str, completion: int | None = None) -> dict[str, torch.Tensor]:
    """Random tokens; the first quarter is a prompt without loss; ``completion``: only that many tokens after it carry loss."""
    generator = torch.Generator().manual_seed(settings.seed)
    ids = torch.randint(0, settings.vocab, (settings.batch, settings.block), generator=generator)
    labels = ids.clone()
    prompt = settings.block // 4
    labels[:, :prompt] = -100  # a prompt without loss
    if completion is not None:
        labels[:, prompt + completion:] = -100
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device), "labels": labels.to(device)}


def hand_loss(student: torch.nn.Module, teacher: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The step's loss written out: shift, mask, T²·KL + CE, mean over loss tokens."""
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        teacher_logits = teacher(**inputs).logits[:, :-1]
    student_logits = student(**inputs).logits[:, :-1]
    targets = batch["labels"][:, 1:]
    mask = targets != -100
    s, t = student_logits[mask].float(), teacher_logits[mask].float()
    log_p = F.log_softmax(t / TEMPERATURE, -1)
    log_q = F.log_softmax(s / TEMPERATURE, -1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1).mean() * TEMPERATURE**2
    ce = F.cross_entropy(s, targets[mask])
    return KD_WEIGHT * kl + CE_WEIGHT * ce


class Contender:
    def __init__(self, name: str, student: torch.nn.Module, teacher: torch.nn.Module, settings: Settings) -> None:
        from distill import DistillationModule
        from distill.losses import TokenCrossEntropy, TokenJSD, TokenKL

        self.name, self.student, self.teacher = name, student, teacher
        self.on_policy: CountingOnPolicy | None = None
        if name in ("teacher-forced", "on-policy"):
            from distill.lm.generation import GenerationSettings

            generation = GenerationSettings(max_new_tokens=settings.new_tokens, do_sample=True)
            if name == "on-policy":
                self.on_policy = CountingOnPolicy(settings.lmbda, generation, seed=settings.seed, eos_token_id=None,
                                                  pad_token_id=0)
            self.module = DistillationModule(
                student, teacher, {"jsd": TokenJSD(beta=0.5, temperature=TEMPERATURE, chunk_size=settings.chunk_size)},
                on_policy=self.on_policy)
            params = [p for p in self.module.parameters() if p.requires_grad]
        elif name == "distill":
            self.module = DistillationModule(student, teacher, {
                "kd": TokenKL(temperature=TEMPERATURE, weight=KD_WEIGHT, chunk_size=settings.chunk_size),
                "ce": TokenCrossEntropy(weight=CE_WEIGHT, chunk_size=settings.chunk_size),
            })
            params = [p for p in self.module.parameters() if p.requires_grad]
        else:
            teacher.eval().requires_grad_(False)
            params = list(student.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=1e-3)
        self.times: list[float] = []
        self.peaks: list[int] = []
        self.first_loss: float | None = None
        self.steps = 0
        self.loss_tokens: list[int] = []

    def step(self, batch: dict[str, torch.Tensor], timed: bool) -> None:
        cuda = batch["input_ids"].is_cuda
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss = hand_loss(self.student, self.teacher, batch) if self.name == "hand" else self.module.training_step(batch, self.steps)
        self.steps += 1
        loss.backward()
        self.optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        if self.first_loss is None:
            self.first_loss = float(loss.detach())
        scored = self.on_policy.scored if self.on_policy is not None else batch
        self.loss_tokens.append(int((scored["labels"][:, 1:] != -100).sum()))
        if timed:
            self.times.append(time.perf_counter() - start)
            if cuda:
                self.peaks.append(torch.cuda.max_memory_allocated())


class CountingOnPolicy(OnPolicy):
    """OnPolicy that keeps the batch it hands the models (to count its loss tokens)."""

    scored: dict | None = None

    def __call__(self, batch, student, step, rank=0):
        self.scored = super().__call__(batch, student, step, rank)
        return self.scored


def run(settings: Settings, names: tuple[str, str] = ("distill", "hand")) -> dict:
    import warnings

    warnings.filterwarnings("ignore", message=".*self.log.*")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(settings.seed)
    teacher, student = gpt2(settings, settings.teacher_layers), gpt2(settings, settings.student_layers)
    teacher.to(device).eval()
    student.to(device).train()
    contenders = [Contender(names[0], student, teacher, settings),
                  Contender(names[1], copy.deepcopy(student), copy.deepcopy(teacher), settings)]
    on_policy_mode = "on-policy" in names
    batch = make_batch(settings, device, completion=settings.new_tokens if on_policy_mode else None)
    for i in range(settings.warmup + settings.steps):
        for contender in contenders:
            contender.step(batch, timed=i >= settings.warmup)
    rows = {}
    for c in contenders:
        rows[c.name] = {"median_step_s": statistics.median(c.times), "min_step_s": min(c.times),
                        "max_step_s": max(c.times), "first_loss": c.first_loss,
                        "loss_tokens_per_step": statistics.median(c.loss_tokens),
                        "peak_memory_mb": max(c.peaks) / 2**20 if c.peaks else None}
    result = {"settings": asdict(settings), "device": device, "threads": torch.get_num_threads(), "contenders": rows,
              "time_ratio": rows[names[0]]["median_step_s"] / rows[names[1]]["median_step_s"]}
    if rows[names[1]]["peak_memory_mb"]:
        result["memory_ratio"] = rows[names[0]]["peak_memory_mb"] / rows[names[1]]["peak_memory_mb"]
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny setting: checks the mechanics only")
    parser.add_argument("--on-policy", action="store_true", help="on-policy (GKD) step vs the teacher-forced step")
    for field, default in asdict(Settings()).items():
        if field not in ("chunk_size", "lmbda"):
            parser.add_argument(f"--{field.replace('_', '-')}", type=int, default=None)
    parser.add_argument("--lmbda", type=float, default=None)
    parser.add_argument("--chunk-size", type=int, default=None)
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else Settings()
    overrides = {k: v for k, v in vars(args).items() if k not in ("quick", "on_policy") and v is not None}
    settings = Settings(**{**asdict(settings), **overrides})
    names = ("on-policy", "teacher-forced") if args.on_policy else ("distill", "hand")
    result = run(settings, names)
    for name, row in result["contenders"].items():
        memory = f", peak {row['peak_memory_mb']:.0f} MiB" if row["peak_memory_mb"] else ""
        print(f"{name:14s} median {1000 * row['median_step_s']:.1f} ms/step "
              f"(min {1000 * row['min_step_s']:.1f}, max {1000 * row['max_step_s']:.1f}){memory}, first loss {row['first_loss']:.6f}, "
              f"{row['loss_tokens_per_step']:g} loss tokens a step")
    print(f"{names[0]} / {names[1]}: time {result['time_ratio']:.2f}x" +
          (f", peak memory {result['memory_ratio']:.2f}x" if "memory_ratio" in result else " (memory measured on a GPU only)"))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
