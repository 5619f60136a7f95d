"""The ``distill`` command: ``distill run|evaluate|export|layers …`` and the listings ``models``, ``losses``, ``data``.

``distill run …`` is ``python -m distill.run …`` (the same overrides), and so on; ``python -m distill``
is the same as ``distill``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from distill.cli.config_directory import config_dir  # no Lightning imported for a listing

#: subcommand → (module it forwards to, one-line description, help text with examples)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("distill.run", "distil a teacher into a student (trains the teacher first if need be)", """\
usage: distill run [KEY=VALUE ...] [-m] [--cfg job]

Overrides are Hydra's: a group option (teacher=resnet50) or any config value (loss.kd.temperature=8).
Unknown keys are named with the close match; -m sweeps comma-separated values.

examples:
  distill run                                            # resnet50 -> resnet18 on digits, KD + CE
  distill run experiment=quick                           # a smoke run in well under a minute
  distill run teacher=resnet56 student=resnet20 data=cifar100 data.download=true
  distill run loss.kd.temperature=8 trainer.max_epochs=20 baseline=true
  distill run -m loss.kd.temperature=1,4,8               # a sweep, with summary.md at the end
  distill run report.latency=quick verbose=true          # shorter timing, every library message
  distill run --cfg job                                  # print the composed config
"""),
    "evaluate": ("distill.evaluate", "measure a trained student (and its teacher) on a data split", """\
usage: distill evaluate checkpoint=PATH [KEY=VALUE ...]

examples:
  distill evaluate checkpoint=outputs/2026-01-01/12-00-00/checkpoints/best.ckpt
  distill evaluate checkpoint=PATH out_dir=eval/ per_sample=true   # also per_sample.csv
"""),
    "export": ("distill.export", "export a trained student (torch.export, TorchScript, ONNX, a state_dict or save_pretrained)", """\
usage: distill export checkpoint=PATH [format=torch_export|torchscript|onnx|state_dict|huggingface] [out=PATH]

examples:
  distill export checkpoint=outputs/2026-01-01/12-00-00/checkpoints/best.ckpt
  distill export checkpoint=PATH format=onnx out=student.onnx      # needs the export extra
"""),
    "layers": ("distill.layers", "list a model's layers and output shapes (for feature losses)", """\
usage: distill layers teacher=NAME student=NAME [model=NAME] [image_size=32] [channels=3] [num_classes=10]
                      [depth=N] [pairs=true] [RUN OVERRIDES ...]

depth=N keeps the layers at most N names deep; pairs=true lists the student/teacher layer pairs of the
same spatial size; a run's overrides (experiment=..., data.image_size=...) list its models on its data.

examples:
  distill layers teacher=resnet50 student=resnet18
  distill layers model=resnet20 image_size=32
  distill layers teacher=resnet50 student=resnet18 pairs=true depth=1
  distill layers experiment=quick data.image_size=16          # the run's models on its data
"""),
    "models": ("", "list the model names teacher= and student= take", """\
usage: distill models

examples:
  distill models
  distill models | grep resnet
"""),
    "losses": ("", "list the loss methods (loss=NAME) with their papers", """\
usage: distill losses

examples:
  distill losses
  distill run loss=dkd
"""),
    "data": ("", "list the data sets (data=NAME)", """\
usage: distill data

examples:
  distill data
  distill run data=cifar10 data.download=true
"""),
}

HELP_FLAGS = ("-h", "--help")


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: distill COMMAND [ARGS ...]   (distill COMMAND --help for its options and examples)", "", "commands:"]
    lines += [f"  {name:<{width}}  {description}" for name, (_, description, _) in COMMANDS.items()]
    lines += ["", "options:", "  -h, --help  this text", "  --version   distill's version",
              "", "examples:", "  distill run experiment=quick", "  distill losses", "  distill layers model=resnet18"]
    return "\n".join(lines)


def version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version as installed

        return installed("distill")
    except PackageNotFoundError:
        from distill import __version__

        return __version__


def _described(folder: Path) -> list[tuple[str, str]]:
    """Each ``*.yaml`` option of a config group with the first line of its leading comment."""
    rows = []
    for path in sorted(folder.glob("*.yaml")):
        first = next((line for line in path.read_text().splitlines() if line.strip()), "")
        rows.append((path.stem, first.lstrip("# ").strip() if first.startswith("#") else ""))
    return rows


def _table(rows: Sequence[tuple[str, str]]) -> str:
    width = max((len(name) for name, _ in rows), default=0)
    return "\n".join(f"{name:<{width}}  {text}".rstrip() for name, text in rows)


def list_losses(config_dir: Path) -> str:
    return "loss=NAME (combine: loss=[kd,fitnet]):\n" + _table(_described(config_dir / "loss"))


def list_data(config_dir: Path) -> str:
    return "data=NAME:\n" + _table(_described(config_dir / "data"))


def list_models() -> str:
    from distill.models.cifar import CIFAR_MODELS
    from distill.models.mnist1d import MNIST1D_MODELS
    from distill.models.torchvision_models import torchvision_model_names

    return "\n".join([
        "teacher=NAME / student=NAME:",
        "CIFAR networks (32x32 input, no pretrained weights):",
        "  " + " ".join(CIFAR_MODELS),
        "MNIST-1D models (1-D signals, data=mnist1d):",
        "  " + " ".join(MNIST1D_MODELS),
        "torchvision classification models (teacher.weights=DEFAULT for pretrained):",
        "  " + " ".join(torchvision_model_names()),
        "timm models: timm:<name> (needs the timm extra), e.g. teacher=timm:resnet18",
        "Hugging Face text classifiers: teacher=hf_sequence_classification teacher.path=<directory or hub id>",
        "causal language models: teacher=tiny_gpt2 (built from a config, experiment=lm), teacher=hf_causal_lm teacher.path=<directory>",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``); forwarded commands run in this process and exit themselves."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in HELP_FLAGS:
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"distill {version()}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        import difflib

        match = difflib.get_close_matches(command, COMMANDS, n=1)
        hint = f"; did you mean '{match[0]}'?" if match else ""
        print(f"error: unknown command '{command}'{hint} (commands: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    module, _, help_text = COMMANDS[command]
    if rest[:1] and rest[0] in HELP_FLAGS:
        print(help_text.rstrip())
        return 0
    if not module:
        listing = {"models": list_models, "losses": lambda: list_losses(config_dir()), "data": lambda: list_data(config_dir())}
        print(listing[command]())
        return 0
    # the process becomes `python -m distill.run …`: Hydra, Lightning's DDP relaunch and exit codes as documented
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", module, *rest])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
