"""The library names settings as `field`; the command-line layer turns exactly those into flags."""

import pytest

from fitnets_tf.errors import ConfigError, check, settings_named, with_setting_names


def test_check_names_the_setting_in_backquotes():
    check(True, "hint_epochs", "never raised")
    with pytest.raises(ConfigError, match=r"^`hint_epochs`: must be >= 0\.$"):
        check(False, "hint_epochs", "must be >= 0.")


def test_settings_named_lists_backquoted_fields_only():
    message = "`data_dir`: no files there. Give `data_dir` or set `download`; layer `conv2` is fine (x, y)."
    assert settings_named(message) == ["data_dir", "data_dir", "download", "conv2"]


def test_with_setting_names_renames_known_fields_and_keeps_other_backquotes():
    flags = {"data_dir", "download"}
    message = "`data_dir`: no files there. Give `data_dir` or set `download`; layer `conv2` is fine."
    renamed = with_setting_names(message, lambda field: f"--{field}" if field in flags else None)
    assert renamed == "--data_dir: no files there. Give --data_dir or set --download; layer `conv2` is fine."
