"""Errors the library raises about what a user gave it, in the library's own words.

A message names a setting by its config field in backquotes (`data_dir`, `hint_epochs`), the name a Python user
passes to `RunConfig` or `SweepConfig`. The command-line layer (`scripts/run_flags.py`) rewrites each such name into
its command-line flag; nothing in `fitnets_tf` knows the command line exists.
"""

import re

# A setting named in a message: a config field in backquotes.
SETTING_PATTERN = re.compile(r"`([a-z][a-z0-9_]*)`")


class ConfigError(ValueError):
    """A setting is invalid; the message names it (as `field`) and what to do instead."""


def check(condition, setting, message):
    """Raises ConfigError("`setting`: message") unless `condition`."""
    if not condition:
        raise ConfigError(f"`{setting}`: {message}")


def settings_named(message):
    """The settings a message names (its backquoted config fields), in order."""
    return SETTING_PATTERN.findall(str(message))


def with_setting_names(message, rename):
    """`message` with every backquoted setting `field` replaced by `rename(field)`; a backquoted word that `rename`
    returns None for (not a setting, e.g. a layer name) keeps its backquotes."""
    def replace(match):
        renamed = rename(match.group(1))
        return match.group(0) if renamed is None else renamed
    return SETTING_PATTERN.sub(replace, str(message))
