import pytest

from distill.cli.overrides import check_checkpoint_command, check_group_overrides, command_line_keys
from distill.errors import DistillError
from distill.cli.config_directory import config_dir

CONF = config_dir()


def test_plain_overrides_pass_through():
    argv = ["-m", "teacher=resnet50", "loss.kd.temperature=1,4", "+trainer.limit_train_batches=2", "~loss.ce"]
    assert check_group_overrides(argv, CONF) == argv


def test_every_model_name_is_an_option():
    argv = ["student=efficientnet_b3", "teacher=wrn_40_2", "student=mnist1d_gru"]
    assert check_group_overrides(argv, CONF) == argv


def test_sweep_lists_are_checked_item_by_item():
    assert check_group_overrides(["loss=kd,ce"], CONF) == ["loss=kd,ce"]
    with pytest.raises(DistillError, match="unknown loss 'kdx'"):
        check_group_overrides(["loss=kd,kdx"], CONF)


@pytest.mark.parametrize(
    "arg, message",
    [
        ("data=digit", "unknown data 'digit' (did you mean digits, digit_heads?)"),
        ("trainer=defualt", "unknown trainer 'defualt' (did you mean default?)"),
        ("student=resnet1", "or any torchvision classification model name"),
        ("experiment=quik", "unknown experiment 'quik' (did you mean quick?)"),
        ("augment=mixupp", "unknown augment 'mixupp' (did you mean mixup?); available: crop_flip, cutmix, mixup, mixup_or_cutmix"),
    ],
)
def test_unknown_options_name_the_close_matches(arg, message):
    with pytest.raises(DistillError) as error:
        check_group_overrides([arg], CONF)
    assert message in str(error.value)


def test_suggestions_are_not_repeated():
    with pytest.raises(DistillError) as error:
        check_group_overrides(["teacher=resnt50"], CONF)
    hint = str(error.value).split("(did you mean ")[1].split("?)")[0].split(", ")
    assert len(hint) == len(set(hint)) and hint[0] == "resnet50"


def test_prefixed_model_name_uses_its_family_config():
    assert check_group_overrides(["teacher=timm:convnext_atto"], CONF) == [
        "teacher=timm", "teacher.name=timm:convnext_atto"
    ]


def test_options_in_subfolders_are_known():
    argv = ["experiment=cifar100/resnet56_resnet20", "lr_scheduler=multistep"]
    assert check_group_overrides(argv, CONF) == argv
    with pytest.raises(DistillError, match="did you mean cifar100/resnet56_resnet20"):
        check_group_overrides(["experiment=cifar100/resnet56_resnet2"], CONF)


def test_the_command_line_is_checked_before_hydra_starts():
    with pytest.raises(DistillError, match="give the file to read: python -m distill.evaluate checkpoint="):
        check_checkpoint_command(["per_sample=true"], "distill.evaluate")
    with pytest.raises(DistillError, match=r"unknown data 'cifar' \(did you mean cifar10, cifar100\?\); available: cifar10, cifar100, "):
        check_checkpoint_command(["checkpoint=x", "data=cifar"], "distill.evaluate")
    check_checkpoint_command(["checkpoint=x", "data=digits"], "distill.evaluate")
    check_checkpoint_command(["--cfg", "job"], "distill.evaluate")
    assert command_line_keys(["data.batch_size=8", "~data.labels", "+x.y=1"]) == {
        "data.batch_size": False, "data.labels": True, "x.y": False,
    }


@pytest.mark.parametrize("arg", ["data.augment=mixup", "+data.augment=cutmix"])
def test_a_batch_augmentation_given_as_data_augment_points_to_the_augment_group(arg):
    value = arg.partition("=")[2]
    with pytest.raises(DistillError, match=rf"data.augment={value}: .*true or false.*: augment={value}$"):
        check_group_overrides([arg], CONF)
    assert check_group_overrides(["data.augment=false"], CONF) == ["data.augment=false"]


@pytest.mark.parametrize("arg", ["teacher=", "+augment=", "loss=[]", "data=''"])
def test_an_empty_choice_is_named(arg):
    group = arg.partition("=")[0].lstrip("+")
    with pytest.raises(DistillError, match=f"chooses no {group} \\(an unset shell variable\\?\\); choose one: "):
        check_group_overrides([arg], CONF)


def test_sweep_functions_over_a_group():
    assert check_group_overrides(["loss=glob(*)"], CONF) == ["loss=glob(*)"]
    assert check_group_overrides(["loss=choice(kd,dkd)"], CONF) == ["loss=choice(kd,dkd)"]
    with pytest.raises(DistillError, match="unknown loss 'kdd'"):
        check_group_overrides(["loss=choice(kd,kdd)"], CONF)


@pytest.mark.parametrize("command", ["distill.evaluate", "distill.export"])
def test_an_empty_checkpoint_is_named(command):
    with pytest.raises(DistillError, match=f"checkpoint= is empty \\(an unset shell variable\\?\\); give the file to read: python -m {command} "):
        check_checkpoint_command(["checkpoint="], command)
