"""Option values from the config file (below the command line and environment variables)."""

from __future__ import annotations

import math
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import platformdirs

CONFIG_ENV = "SANDPIPER_CONFIG"
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class ConfigError(Exception):
    pass


def config_path() -> Path:
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override)
    return platformdirs.user_config_path("sandpiper") / "config.toml"


def load_config(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """`{command: {option: value}}` from the TOML file, `[relay] pub-port = 8001` style.

    A missing file is an empty config; a broken one is an error, never silently ignored.
    """
    path = path or config_path()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    config: dict[str, dict[str, Any]] = {}
    for section, values in raw.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: [{section}] must be a table of options")
        config[section] = {key.replace("-", "_"): value for key, value in values.items()}
    return config


def parse_duration(text: str) -> float:
    """Seconds from `90`, `1.5`, `15s`, `500ms`, `10m`, `24h`, `1d` or `1h30m`."""
    text = text.strip().lower()
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(number + unit for number, unit in parts) != text:
            raise ValueError(f"not a duration: {text!r} (try 30s, 15m, 24h)") from None
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a duration must be positive: {text!r}")
    return seconds
