"""``teacher=NAME`` / ``student=NAME`` for every built-in model name, without a config file per name.

Each name of the CIFAR zoo, the MNIST-1D models and torchvision's classifiers is stored in
Hydra's ConfigStore as the generic config of its family plus the name, i.e. what
``teacher=cifar teacher.name=resnet56`` composes. A file ``conf/<group>/<name>.yaml`` (one that
says more than the name, like the MNIST-1D CNN teacher's schedule) takes the name's place.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from hydra.core.config_store import ConfigStore

from distill.models.cifar import CIFAR_MODELS
from distill.models.mnist1d import MNIST1D_MODELS
from distill.models.torchvision_models import torchvision_model_names

#: the groups whose options are models
MODEL_GROUPS = ("teacher", "student")


def shortcut_families() -> dict[str, str]:
    """Each built-in model name mapped to the generic config of its family (``cifar`` or ``torchvision``)."""
    families = dict.fromkeys(torchvision_model_names(), "torchvision")
    families.update(dict.fromkeys(MNIST1D_MODELS, "torchvision"))
    families.update(dict.fromkeys(CIFAR_MODELS, "cifar"))
    return families


@cache
def register_model_shortcuts(conf: Path) -> None:
    """Store every built-in model name as an option of the model groups (once per process)."""
    store = ConfigStore.instance()
    for group in MODEL_GROUPS:
        for name, family in shortcut_families().items():
            if not (conf / group / f"{name}.yaml").exists():
                store.store(group=group, name=name, node={"defaults": [family, "_self_"], "name": name})
