"""The emoforge configuration file (YAML), validated: the top-level schema and its loader.

A wrong key or a wrong value is an error that names the key (``acquisition.download.concurrency``)
and the file. Every field has a default, so an empty file (or none) is a valid configuration: the
FindingEmo keyword sets, DuckDuckGo search, FindingEmo's first-phase limits (FindingEmo §2.3.1:
N = 500, 800 px < w < 1600 px). The sections live in one module per domain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, field_validator

from ops.config.acquisition import AcquisitionConfig
from ops.config.annotations import AnnotationsConfig
from ops.config.base import ConfigError, _Strict
from ops.config.dedup import DedupConfig


class EmoforgeConfig(_Strict):
    data_dir: str | None = None
    acquisition: AcquisitionConfig = AcquisitionConfig()
    dedup: DedupConfig = DedupConfig()
    annotations: AnnotationsConfig = AnnotationsConfig()

    @field_validator("data_dir")
    @classmethod
    def _nonempty(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be empty")
        return v


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        else:
            lines.append(f"  {key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def parse_config(data: dict[str, Any] | None, source: str = "<config>") -> EmoforgeConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"invalid configuration in {source}: the top level must be a mapping")
    try:
        return EmoforgeConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def load_config(path: str | Path | None) -> EmoforgeConfig:
    """Read and validate a YAML config file; ``None`` gives the defaults."""
    if path is None:
        return EmoforgeConfig()
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read configuration file {p}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"configuration file {p} is not valid YAML: {e}") from None
    if isinstance(data, dict):
        _resolve_relative_paths(data, p.resolve().parent)
    return parse_config(data, str(p))


def _resolve_relative_paths(data: dict[str, Any], base: Path) -> None:
    """Relative paths in a config file are relative to the file's folder, not to the working dir."""
    def fix(container: Any, key: str) -> None:
        if isinstance(container, dict) and isinstance(container.get(key), str) and container[key].strip():
            v = Path(container[key]).expanduser()
            container[key] = str(v if v.is_absolute() else base / v)

    fix(data, "data_dir")
    acq = data.get("acquisition")
    if isinstance(acq, dict) and isinstance(acq.get("provider"), dict):
        fix(acq["provider"].get("url_list"), "path")
    ann = data.get("annotations")
    if isinstance(ann, dict):
        for src in ann.get("sources") or []:
            fix(src, "path")
        fix(ann.get("grading"), "gold_path")


def config_to_yaml(cfg: EmoforgeConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
