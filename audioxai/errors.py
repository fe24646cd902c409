"""Exceptions raised on bad input; each message names the offending thing and the fix."""

from __future__ import annotations


class AudioXAIError(Exception):
    """Base class of every error audioxai raises on purpose."""


class AudioInputError(AudioXAIError, ValueError):
    """Audio that cannot be used as given: empty, corrupt, NaN, wrong rate or channel count."""


class DatasetError(AudioXAIError, ValueError):
    """A dataset folder or metadata table that does not follow the expected layout."""


class ConfigError(AudioXAIError, ValueError):
    """A configuration with unknown keys, wrong types or impossible values."""
