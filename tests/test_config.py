"""train.config: the recipe's defaults, the flags that override them, and the record of what was changed."""

from __future__ import annotations

import argparse

from train.config import TrainConfig, add_config_args, config_from_args


def test_changed_from_defaults_names_exactly_the_settings_that_differ_in_field_order():
    assert TrainConfig().changed_from_defaults() == []
    assert TrainConfig(photo_aug=0.5, lr=0.1).changed_from_defaults() == ["lr", "photo_aug"]
    assert TrainConfig(lr=TrainConfig().lr).changed_from_defaults() == []  # given, but the default value
    parser = argparse.ArgumentParser()
    add_config_args(parser)
    cfg = config_from_args(parser.parse_args(["--schedule", "wsd", "--no-channels-last", "--ferplus", "v.csv"]))
    assert cfg.changed_from_defaults() == ["ferplus", "schedule", "channels_last"]
