import dataclasses

import pytest

from slicreg_lite.core.config import (
    PAPER_TEST_IDS,
    PAPER_TRAIN_IDS,
    PRESET_NAMES,
    REAL_CT_TEACHER,
    get_config,
    is_real_ct,
)
from slicreg_lite.core.labels import LABEL_NAMES, LARGE_ORGANS


def test_btcv_label_order():
    assert len(LABEL_NAMES) == 13
    assert LABEL_NAMES[0] == "spleen" and LABEL_NAMES[5] == "liver"
    assert [LABEL_NAMES[i - 1] for i in LARGE_ORGANS] == [
        "spleen", "right kidney", "left kidney", "liver"]


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_presets_are_consistent(name):
    cfg = get_config(name)
    assert cfg.name == name
    assert cfg.split.template_id in cfg.split.test_ids
    assert not set(cfg.split.train_ids) & set(cfg.split.test_ids)
    assert cfg.split.template_id not in cfg.split.evaluation_ids
    assert len(cfg.grid.shape) == 3


def test_paper_split_and_sizes():
    cfg = get_config("paper")
    assert cfg.grid.shape == (192, 160, 256) and cfg.grid.spacing_mm == 2.0
    assert len(PAPER_TRAIN_IDS) == 20 and len(PAPER_TEST_IDS) == 10
    assert len(cfg.split.evaluation_ids) == 9 and len(cfg.split.validation_ids) == 9
    assert len(cfg.split.all_ids) == 39
    assert cfg.adam.learning_rate == 0.05 and cfg.adam.iterations == 100
    assert cfg.supervoxels.n_layers == 16 and cfg.supervoxels.n_supervoxels == 128


@pytest.mark.parametrize("preset", ["smoke", "lite", "paper"])
def test_validation_and_test_subjects_are_disjoint_from_training_and_each_other(preset):
    split = get_config(preset).split
    train, test, validation = (set(ids) for ids in (split.train_ids, split.test_ids,
                                                     split.validation_ids))
    assert validation, "every preset holds validation subjects to choose settings on"
    assert not train & test and not train & validation and not test & validation
    assert split.template_id in test and split.template_id not in split.evaluation_ids
    assert set(split.all_ids) == train | test | validation
    with pytest.raises(ValueError, match="one role only.*test_ids and validation_ids"):
        dataclasses.replace(split, validation_ids=(split.test_ids[0],))


@pytest.mark.parametrize("preset", ["smoke", "lite", "paper"])
def test_the_paper_row_has_the_papers_loss_and_the_extension_its_centre_fit(preset):
    """cfg.adam is the paper's alignment (no centre term, Adam's published learning rate
    and iterations, a published alpha and k); cfg.centre_fit is this toolkit's."""
    cfg = get_config(preset)
    assert cfg.adam.is_paper and not cfg.centre_fit.is_paper
    assert cfg.adam.learning_rate == 0.05
    assert cfg.adam.iterations == (20 if preset == "smoke" else 100)  # smoke: seconds
    assert cfg.adam.alpha in (0.015, 0.15) and cfg.adam.k in (5, 8)
    assert cfg.centre_fit.centre_weight > 0 and cfg.centre_fit.keypoints == "centres"
    with pytest.raises(ValueError, match="needs adam.keypoints = 'centres'"):
        cfg.with_updates(centre_fit={"keypoints": "random"})
    with pytest.raises(ValueError, match="adam.fold must be one of"):
        cfg.with_updates(adam={"fold": "diagonal"})


def test_validation_ids_decide_no_cached_result():
    """Holding subjects out for choosing settings changes no stage's key, and so neither
    the cache nor the shipped networks."""
    from slicreg_lite.cohort.sources import open_source
    from slicreg_lite.pipeline.weights import network_key

    cfg = get_config("lite")
    other = cfg.with_updates(split={"validation_ids": (201, 202)})
    assert network_key(cfg, open_source("phantom", cfg), "deeplab", "slic") == \
        network_key(other, open_source("phantom", other), "deeplab", "slic")


def test_lite_is_the_default_and_the_environment_chooses(monkeypatch):
    monkeypatch.delenv("SLICREG_PRESET", raising=False)
    assert get_config().name == "lite"
    monkeypatch.setenv("SLICREG_PRESET", "smoke")
    assert get_config().name == "smoke"


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown preset 'huge'.*smoke.*lite.*paper"):
        get_config("huge")


def test_updates_and_frozen():
    cfg = get_config("lite", adam={"alpha": 0.5})
    assert cfg.adam.alpha == 0.5 and get_config("lite").adam.alpha != 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.adam.alpha = 1.0
    with pytest.raises(ValueError, match="unknown field.*'alfa'"):
        get_config("lite", adam={"alfa": 0.1})
    with pytest.raises(ValueError, match="unknown config section 'adma'"):
        get_config("lite", adma={"alpha": 0.1})


def test_a_stage_key_changes_only_with_what_decides_it():
    from slicreg_lite.cohort.sources import open_source, short_hash
    from slicreg_lite.pipeline.cache import decided_by

    cfg = get_config("lite")
    other = cfg.with_updates(adam={"k": 7})
    data = open_source("phantom", cfg)
    assert short_hash(decided_by(cfg, data, ("teacher",))) == \
        short_hash(decided_by(other, data, ("teacher",)))
    assert short_hash(decided_by(cfg, data, ("adam",))) != \
        short_hash(decided_by(other, data, ("adam",)))
    with pytest.raises(ValueError, match="unknown config section"):
        decided_by(cfg, data, ("nonsense",))


def test_run_settings_are_checked():
    from slicreg_lite.core.config import RunSettings

    assert RunSettings(jobs=3).workers == 3
    with pytest.raises(ValueError, match="jobs must be a positive number of workers, -1 or "
                                         "None; got 0"):
        RunSettings(jobs=0)
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or None; got 'tpu'"):
        RunSettings(device="tpu")
    with pytest.raises(ValueError, match="validate_every must be a positive integer"):
        RunSettings(validate_every=0)


def test_config_section_accepts_the_whole_config_or_the_section():
    from slicreg_lite.core.config import SupervoxelConfig, TeacherConfig, config_section

    cfg = get_config("smoke")
    assert config_section(cfg, TeacherConfig) is cfg.teacher
    assert config_section(cfg.supervoxels, SupervoxelConfig) is cfg.supervoxels
    with pytest.raises(TypeError, match="Config or TeacherConfig; got PhantomConfig"):
        config_section(cfg.phantom, TeacherConfig)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_real_ct_takes_its_own_teacher_settings(name):
    phantom, real = get_config(name), get_config(name, real_ct=True)
    for setting, value in REAL_CT_TEACHER[name].items():
        assert getattr(real.teacher, setting) == value
    assert real.teacher != phantom.teacher
    # nothing else changes; explicit updates still apply on top
    assert dataclasses.replace(real, teacher=phantom.teacher) == phantom
    assert get_config(name, real_ct=True, teacher={"regularisation": 1.5}).teacher \
        .regularisation == 1.5


@pytest.mark.parametrize("data, real", [("phantom", False), ("PHANTOM", False),
                                        ("bcv:/data/AbdomenIsoCrop", True),
                                        ("learn2reg:/data/l2r", True), ("folder:scans", True)])
def test_which_data_sources_hold_real_scans(data, real):
    assert is_real_ct(data) is real
