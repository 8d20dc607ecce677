import json
import math

import pytest

from diffview.core.train.config import TrainConfig, image_defaults


def test_defaults_validate_and_round_trip_through_json():
    cfg = TrainConfig().validate()
    again = TrainConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg


def test_from_toml_with_and_without_a_table(tmp_path):
    (tmp_path / "a.toml").write_text('[train]\nsteps = 123\nschedule = "linear"\nlr = 5e-4\n')
    cfg = TrainConfig.from_toml(tmp_path / "a.toml")
    assert (cfg.steps, cfg.schedule, cfg.lr) == (123, "linear", 5e-4)
    (tmp_path / "b.toml").write_text('objective = "v"\nbatch_size = 16\n')
    cfg = TrainConfig.from_toml(tmp_path / "b.toml")
    assert (cfg.objective, cfg.batch_size) == ("v", 16)


def test_toml_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        TrainConfig.from_toml(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("steps = = 3\n")
    with pytest.raises(ValueError, match="cannot be read"):
        TrainConfig.from_toml(tmp_path / "bad.toml")
    (tmp_path / "typo.toml").write_text("stpes = 3\n")
    with pytest.raises(ValueError, match="unknown setting.*stpes"):
        TrainConfig.from_toml(tmp_path / "typo.toml")


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("schedule", "wavy", "unknown schedule 'wavy'"),
        ("objective", "score", "unknown objective 'score'"),
        ("model", "xl", "unknown model 'xl'"),
        ("steps", 0, "steps must be a positive integer"),
        ("batch_size", 2.5, "batch_size must be a positive integer"),
        ("lr", 0.0, r"lr must lie in \(0, 1\)"),
        ("ema_decay", 1.0, r"ema_decay must lie in \[0, 1\)"),
        ("channels", "2", "unknown channels '2'"),
        ("image_size", 2, "image_size must be an integer >= 4"),
        ("dropout", 1.0, r"dropout must lie in \[0, 1\)"),
        ("horizons", [[0, 10], [5, 5]], "horizons must be"),
        ("horizons", [[1, 10]], "horizons must be"),
        ("horizons", [[0, 10], [12, 20], [11, 30]], "horizons must be"),
        ("horizons", [], "horizons must be"),
    ],
)
def test_validation_names_the_bad_field(field, value, match):
    cfg = TrainConfig()
    setattr(cfg, field, value)
    with pytest.raises(ValueError, match=match):
        cfg.validate()


def test_horizons_round_trip_through_json_and_toml(tmp_path):
    cfg = TrainConfig(steps=8000, horizons=[[0, 2000], [1200, 8000]]).validate()
    assert TrainConfig.from_dict(json.loads(cfg.to_json())) == cfg
    (tmp_path / "h.toml").write_text("steps = 8000\nhorizons = [[0, 2000], [1200, 8000]]\n")
    assert TrainConfig.from_toml(tmp_path / "h.toml").validate().horizons == [[0, 2000], [1200, 8000]]
    assert TrainConfig.from_dict({"steps": 10}).horizons is None  # a run from before horizons: [[0, steps]]


@pytest.mark.parametrize("side", [4, 8, 16, 28, 32, 48, 64, 96, 128, 256, 1024])
@pytest.mark.parametrize("count", [1, 5, 63, 64, 65, 100_000])
def test_image_defaults_keep_the_digits_time_per_pixel(side, count):
    d = TrainConfig()
    got = image_defaults(side, count)
    assert got["batch_size"] == min(d.batch_size, count)
    expected = d.steps if side <= 28 else max(2 * d.warmup_steps, math.floor(d.steps * 784 / side ** 2 / 10 + 0.5) * 10)
    assert got["steps"] == expected and got["steps"] <= d.steps and got["steps"] % 10 == 0
    assert image_defaults(28, 10_000) == {"steps": d.steps, "batch_size": d.batch_size}  # the digits: unchanged
    assert TrainConfig(**got).validate()


def test_image_defaults_refuse_empty_data():
    with pytest.raises(ValueError, match="positive side and count"):
        image_defaults(32, 0)
