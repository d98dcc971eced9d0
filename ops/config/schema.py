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
from pydantic import ValidationError, field_validator, model_validator

from ops.config.acquisition import AcquisitionConfig
from ops.config.annotations import AnnotationsConfig
from ops.config.base import ConfigError, _Strict
from ops.config.dedup import DedupConfig
from ops.config.faces import FacesConfig, SoftLabelsConfig
from ops.config.models import ModelsConfig
from ops.config.release import ReleaseConfig
from ops.config.training import TrainingConfig


class EmoforgeConfig(_Strict):
    data_dir: str | None = None
    acquisition: AcquisitionConfig = AcquisitionConfig()
    dedup: DedupConfig = DedupConfig()
    annotations: AnnotationsConfig = AnnotationsConfig()
    models: ModelsConfig = ModelsConfig()
    faces: FacesConfig = FacesConfig()
    soft_labels: SoftLabelsConfig = SoftLabelsConfig()
    training: TrainingConfig = TrainingConfig()
    release: ReleaseConfig = ReleaseConfig()

    @model_validator(mode="after")
    def _soft_label_backbones(self) -> "EmoforgeConfig":
        names = [b.key for b in self.models.backbones]
        if self.faces.blendshapes:
            names.append("mediapipe_blendshapes")
        for key, ids in (("ebc_backbones", self.soft_labels.ebc_backbones or []),
                         ("au_backbone", [self.soft_labels.au_backbone] if self.soft_labels.au_backbone else [])):
            unknown = [i for i in ids if i not in names]
            if unknown:
                raise ValueError(f"soft_labels.{key} names {unknown}, not a face feature extractor: "
                                 f"models.backbones ids or mediapipe_blendshapes (with faces.blendshapes): {names}")
        t, image_ids = self.training, [b.key for b in self.models.backbones]
        checks = [("findingemo.extractors", t.findingemo.extractors, image_ids),
                  ("cage.extractors", t.cage.extractors, image_ids),
                  ("affectnet.extractors", t.affectnet.extractors, names)]
        checks += [(f"deep_affect.feature_sets.{k}", v, image_ids + [f"faces:{n}" for n in names])
                   for k, v in (t.deep_affect.feature_sets or {}).items()]
        for key, ids, allowed in checks:
            unknown = [i for i in ids or [] if i not in allowed]
            if unknown:
                raise ValueError(f"training.{key} names {unknown}; known: {allowed}")
        return self

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
        elif not e["loc"]:  # a check across sections: its message names the keys
            lines.append(f"  {e['msg'].removeprefix('Value error, ')}")
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


def load_config(path: str | Path | None, base: dict[str, Any] | None = None) -> EmoforgeConfig:
    """Read and validate a YAML config file; ``None`` gives the defaults (or ``base``).

    ``base``: settings the file is layered over (the demo's, for ``emoforge build --demo --config
    FILE``): the file's keys replace the base's, key by key, nested mappings merged. After
    validation, files the configuration names must exist and names must be known (taxonomies,
    mapping fields): a problem is a :class:`ConfigError` naming the file and the key."""
    if path is None:
        return parse_config(dict(base or {}), "<defaults>" if base is None else "<demo>")
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read configuration file {p}: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"configuration file {p} is not UTF-8 text: byte {e.start} (line {line}) "
                          f"is {raw[e.start:e.start + 1]!r}; save it as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"configuration file {p} is not valid YAML: {e}") from None
    if isinstance(data, dict):
        _resolve_relative_paths(data, p.resolve().parent)
        if base:
            data = deep_merge(base, data)
    elif data is None and base:
        data = dict(base)
    cfg = parse_config(data, str(p))
    problems = check_references(cfg)
    if problems:
        raise ConfigError(f"invalid configuration in {p}:\n" + "\n".join(f"  {k}: {m}" for k, m in problems))
    return cfg


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` layered over ``base``: nested mappings merged key by key, anything else replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def check_references(cfg: EmoforgeConfig) -> list[tuple[str, str]]:
    """What a configuration names that does not exist: (key, problem) pairs. Files (URL list,
    annotation sources, gold references), taxonomies, long-format mapping fields."""
    from ops.annotations.schema import LONG_FIELDS
    from ops.annotations.taxonomy import taxonomy_names

    problems: list[tuple[str, str]] = []

    def exists(key: str, path: str | None, what: str) -> None:
        if path and not Path(path).exists():
            problems.append((key, f"{what} {path} does not exist"))

    u = cfg.acquisition.provider.url_list
    if cfg.acquisition.provider.kind == "url_list":
        exists("acquisition.provider.url_list.path", u.path, "URL list")
    known = set(taxonomy_names())
    for i, src in enumerate(cfg.annotations.sources):
        key = f"annotations.sources.{i}"
        if not src.generated_by:
            exists(f"{key}.path", src.path, "annotation file")
        if src.taxonomy is not None and src.taxonomy not in known:
            problems.append((f"{key}.taxonomy", f"unknown taxonomy {src.taxonomy!r} (known: {', '.join(sorted(known))})"))
        for field in (src.mapping or {}):
            if field not in LONG_FIELDS:
                problems.append((f"{key}.mapping.{field}",
                                 f"unknown annotation field (known: {', '.join(LONG_FIELDS)})"))
    if not cfg.annotations.grading.gold_generated_by:
        exists("annotations.grading.gold_path", cfg.annotations.grading.gold_path, "gold reference file")
    exists("faces.ethnicity_weights", cfg.faces.ethnicity_weights, "ethnicity weights file")
    return problems


WEIGHT_KEYWORDS = ("train", "none", "torchvision-default", "timm-default", "places365-default")


def _resolve_relative_paths(data: dict[str, Any], base: Path) -> None:
    """Relative paths in a config file are relative to the file's folder, not to the working dir."""
    def fix(container: Any, key: str) -> None:
        # "@demo_world/..." names a file the build generates (ops.demo.config): not relative to the file
        if isinstance(container, dict) and isinstance(container.get(key), str) and container[key].strip() \
                and not container[key].startswith("@"):
            v = Path(container[key]).expanduser()
            container[key] = str(v if v.is_absolute() else base / v)

    fix(data, "data_dir")
    acq = data.get("acquisition")
    if isinstance(acq, dict) and isinstance(acq.get("provider"), dict):
        fix(acq["provider"].get("url_list"), "path")
    models = data.get("models")
    if isinstance(models, dict):
        for b in models.get("backbones") or []:
            w = b.get("weights") if isinstance(b, dict) else None
            if isinstance(w, str) and w not in WEIGHT_KEYWORDS and ":" not in w.split("/")[0]:
                fix(b, "weights")
    ann = data.get("annotations")
    if isinstance(ann, dict):
        for src in ann.get("sources") or []:
            fix(src, "path")
        fix(ann.get("grading"), "gold_path")
    fix(data.get("faces"), "ethnicity_weights")


def config_to_yaml(cfg: EmoforgeConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
