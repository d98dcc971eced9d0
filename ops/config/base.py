"""The base of every configuration section: strict (unknown keys are errors) and frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """A configuration file could not be read or did not validate."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Stock-photo providers and image aggregators, blacklisted as FindingEmo did (§2.3.1). Matching is
# on the registered domain and all its subdomains (ops.acquisition.candidates).
