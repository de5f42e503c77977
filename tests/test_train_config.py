"""TrainConfig: bounds and rules checked on construction, strict from_dict, the schedule it drives."""

import pytest

from common.settings import SettingsError
from unilseg.train_config import TrainConfig
from unilseg.train_worker import lr_at


def test_validation():
    with pytest.raises(SettingsError, match="at least 2 per worker"):
        TrainConfig(data=[("x", 1)], workers=2, batch_size=2)
    with pytest.raises(SettingsError, match="TrainConfig.steps must be >= 1"):
        TrainConfig(steps=0)
    with pytest.raises(SettingsError, match="unknown setting.*bogus"):
        TrainConfig.from_dict({"bogus": 1})
    with pytest.raises(SettingsError, match="unknown setting.*flip"):
        TrainConfig(augment={"flip": 0.5})  # AugmentConfig's field is flip_prob
    cfg = TrainConfig(data=[("x", 1)], steps=100)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_schedule():
    cfg = TrainConfig(data=[("x", 1)], steps=100, warmup_steps=10, lr=1e-3, min_lr_ratio=0.1)
    assert lr_at(5, cfg) == pytest.approx(5e-4) and lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(100, cfg) == pytest.approx(1e-4) and lr_at(50, cfg) < lr_at(20, cfg)
    assert lr_at(20, cfg, time_fraction=1.0) == pytest.approx(1e-4)  # a time budget moves the cosine on
