"""Configuration of dataset releases (the ``dataset_release`` asset; ``emoforge release`` flags win)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ops.config.base import _Strict


class ReleaseConfig(_Strict):
    """A release freezes every table (or ``tables``) with the images they reference.

    ``version`` None: the asset names the release ``0.0.<n>-<12 hex of the tables, code and config>``
    (n counts the earlier automatic releases), so a rebuild on unchanged data finds the same release
    and changed data makes the next one."""

    name: str = Field("emoforge-dataset", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.=-]*$")
    version: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.=-]*$")
    formats: list[Literal["hf", "webdataset"]] = Field(default_factory=list)
    tables: list[str] | None = None
