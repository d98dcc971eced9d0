"""One way for assets to read their inputs, write their tables and report (the standard metadata).

Every asset does::

    io = AssetIO(context, emoforge)
    df = io.read("candidate_urls", partition=key)
    out = some_op(df, ...)
    written = io.write("downloaded_images", out, partition=key)
    return io.result(written, items_in=..., items_out=..., dropped={...}, examples=...)

and gets, on its materialization, the metadata the UI and ``emoforge build`` read:
``dagster/row_count`` (the rows actually written), ``dagster/column_schema``, the table's file
path, a ready ``emoforge sql`` command, the configuration fingerprint of the asset's config section;
``items_in`` / ``items_out`` / ``dropped`` stay separate keys (what went in, came out, and why the
rest did not). A statistic that is empty or NaN for a known reason carries the reason instead
(:func:`explain`).
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import math
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

import pandas as pd
import pyarrow as pa
from dagster import MetadataValue, TableColumn, TableSchema

from assets._meta import md_table  # noqa: F401  (re-exported for the asset modules)


def code_version(*modules: ModuleType, extra: str = "") -> str:
    """A code version for an asset: a hash of the source of the ops modules it runs, so that the UI
    marks an asset stale when (and only when) its computation changed."""
    h = hashlib.sha256(extra.encode())
    for m in modules:
        try:
            h.update(inspect.getsource(m).encode())
        except (OSError, TypeError):  # no source (frozen/compiled): fall back to the module name
            h.update(m.__name__.encode())
    return h.hexdigest()[:12]


def config_fingerprint(section: Any) -> str:
    """A short hash of a configuration section (pydantic model, mapping or value)."""
    if hasattr(section, "model_dump"):
        section = section.model_dump(mode="json")
    text = json.dumps(section, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Written:
    """A table (or one partition of it) an asset wrote."""

    name: str
    path: Path
    rows: int
    schema: pa.Schema
    partition: str | None = None


def _arrow_schema(df: pd.DataFrame | pa.Table) -> pa.Schema:
    if isinstance(df, pa.Table):
        return df.schema
    return pa.Schema.from_pandas(df, preserve_index=False)


def column_schema(schema: pa.Schema) -> TableSchema:
    return TableSchema(columns=[TableColumn(name=f.name, type=str(f.type)) for f in schema])


def explain(value: Any, reason: str) -> Any:
    """A metadata value that is empty or NaN for a known reason becomes the reason, in words."""
    if value is None:
        return reason
    if isinstance(value, float) and math.isnan(value):
        return reason
    if isinstance(value, pd.DataFrame) and value.empty:
        return reason
    if isinstance(value, (list, dict, tuple)) and not value:
        return reason
    return value


def png_md(png: bytes, title: str, path: Path | None = None) -> MetadataValue:
    """A figure inline in the UI (markdown with a data: URI), with the file it was also written to."""
    where = f" (`{path}`)" if path else ""
    return MetadataValue.md(f"**{title}**{where}\n\n![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")


class AssetIO:
    """Reads, writes and reports for one asset execution (see the module docstring)."""

    def __init__(self, context: Any, emoforge: Any, config_section: Any = None):
        self.context = context
        self.emoforge = emoforge
        self.settings = emoforge.settings
        self.wh = emoforge.warehouse
        self._section = config_section
        self.written: list[Written] = []
        self.external_inputs: Any = None   # the fingerprint of files outside the warehouse, as read (assets._inputs)
        self.identity: dict[str, Any] = {}  # what else the asset made, for its consumers (views, a model version)
        self.other_files: list[Path] = []   # files it wrote besides tables (verified before it is skipped)

    # ---- inputs ---------------------------------------------------------------------------------
    def read(self, name: str, partition: str | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        return self.wh.read_table(name, partition=partition, columns=columns)

    def has(self, name: str, partition: str | None = None) -> bool:
        return self.wh.has_table(name, partition)

    # ---- outputs --------------------------------------------------------------------------------
    def write(self, name: str, data: pd.DataFrame | pa.Table, partition: str | None = None,
              schema: pa.Schema | None = None) -> Written:
        """Write a table (or a partition of it) with its fixed schema when it has one."""
        path = self.wh.write_table(name, data, partition=partition, schema=schema, refresh=False)
        w = Written(name, path, int(data.num_rows if isinstance(data, pa.Table) else len(data)),
                    schema if schema is not None else _arrow_schema(data), partition)
        self.written.append(w)
        return w

    def figure(self, draw: Any, *args: Any, **kwargs: Any) -> bytes:
        """``draw(*args, **kwargs)`` (PNG bytes), found again when the same figure was drawn before
        (ops.figures: a kept model or run shows the figure of its first build)."""
        from ops.figures import cached_png

        return cached_png(self.wh.figure_cache(), draw, *args, **kwargs)

    def picture(self, key: str, draw: Any, title: str) -> dict:
        """``{key: png}`` metadata from ``draw(blob_path, thumb_path)`` (an ops.pictures sheet), or
        nothing when there is nothing to draw; a failed drawing is logged, never fatal."""
        try:
            png = draw(self.wh.blobs.path, self.wh.thumbnail_path)
        except Exception as e:  # noqa: BLE001 - a picture must not fail the asset that computed the data
            self.context.log.warning(f"{key}: could not draw ({type(e).__name__}: {e})")
            return {}
        return {key: png_md(png, title)} if png else {}

    def register_views(self, views: Mapping[str, str]) -> None:
        """Add ``views`` to the catalog (rebuilt with the tables written so far); a view that does not
        bind is an error naming it."""
        desc = self.wh.register_views(dict(views))
        self.identity.setdefault("views", {}).update(views)
        broken = {n: e for n, e in desc.get("skipped_views", {}).items() if n in views}
        if broken:
            raise RuntimeError(f"views that do not bind: {broken}")

    def sql_command(self, name: str) -> str:
        return f'emoforge sql --data-dir {self.wh.root} "select * from {name} limit 10"'

    def result_metadata(self, written: Written | None = None, *, items_in: int | None = None,
                        items_out: int | None = None, dropped: Mapping[str, int] | None = None,
                        **extra: Any) -> dict[str, Any]:
        """The standard metadata of a materialization, plus the asset's own keys."""
        w = written or (self.written[0] if self.written else None)
        md: dict[str, Any] = {}
        if w is not None:
            md["dagster/row_count"] = MetadataValue.int(w.rows)
            md["dagster/column_schema"] = MetadataValue.table_schema(column_schema(w.schema))
            md["table"] = w.name
            md["path"] = MetadataValue.path(str(w.path))
            md["sql"] = MetadataValue.text(self.sql_command(w.name))
        if items_in is not None:
            md["items_in"] = MetadataValue.int(int(items_in))
        if items_out is not None:
            md["items_out"] = MetadataValue.int(int(items_out))
        if dropped is not None:
            md["dropped"] = MetadataValue.json({str(k): int(v) for k, v in dropped.items()})
        if self._section is not None:
            md["config_fingerprint"] = config_fingerprint(self._section)
        if len(self.written) > 1:
            md["tables_written"] = MetadataValue.json(
                {x.name + (f"[{x.partition}]" if x.partition else ""): x.rows for x in self.written})
        md.update(extra)
        return md

    def refresh(self) -> None:
        """Bring the catalog up to date with what this asset wrote (once, not per table)."""
        if any(not self.wh.catalog_covers(w.name, w.path) for w in self.written):
            self.wh.refresh_catalog()

    def provenance(self) -> dict[str, Any]:
        """The inputs key and the files written (assets._inputs), for a global asset: what lets the
        next build skip it while nothing it reads changed. Partitioned assets record none (the build
        plans scrape batches by their search logs)."""
        from assets import _inputs

        ctx = self.context
        if ctx.has_partition_key:
            return {}
        key = ctx.asset_key
        ad = ctx.assets_def
        parents = [d.asset_key for d in ad.specs_by_key[key].deps]
        md: dict[str, Any] = {_inputs.INPUTS_KEY: MetadataValue.text(_inputs.inputs_key(
            ctx.instance, key, parents, ad.code_versions_by_key.get(key), self.settings, self.external_inputs))}
        files = _inputs.outputs_record(self.wh.root, [*(w.path for w in self.written), *self.other_files])
        md[_inputs.OUTPUTS] = MetadataValue.json(files)
        if files or self.identity:   # otherwise its consumers know it by its materialization's storage id
            md[_inputs.OUTPUT_FINGERPRINT] = MetadataValue.text(_inputs.digest(
                {"files": {k: v["sha256"] for k, v in files.items()}, "identity": self.identity}))
        return md

    def result(self, written: Written | None = None, **kwargs: Any):
        from dagster import MaterializeResult

        self.refresh()
        return MaterializeResult(metadata={**self.result_metadata(written, **kwargs), **self.provenance()})
