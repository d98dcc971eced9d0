"""Figures drawn once: a PNG is kept by a key of what it shows, so a refresh that found a model or a
run again attaches the figure it drew before instead of drawing it with matplotlib again (about 0.1-0.3 s
each, ten or more per refresh).

The key: the drawing function (module, name and the source of its module), matplotlib's version and
the arguments (DataFrames by their columns, dtypes, index and values; arrays by dtype, shape and bytes;
lists, dicts and scalars by value). Arguments of any other type are drawn without the store."""

from __future__ import annotations

import hashlib
import inspect
import sys
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd


class Unkeyable(TypeError):
    pass


def _feed(h, x: Any) -> None:
    if x is None or isinstance(x, (bool, int, float, str, np.integer, np.floating, np.bool_)):
        h.update(f"{type(x).__name__}:{x!r};".encode())
    elif isinstance(x, pd.DataFrame):
        h.update(f"df{list(map(str, x.columns))}{[str(t) for t in x.dtypes]};".encode())
        h.update(pd.util.hash_pandas_object(x, index=True).to_numpy().tobytes())
    elif isinstance(x, pd.Series):
        h.update(f"s{x.name}{x.dtype};".encode())
        h.update(pd.util.hash_pandas_object(x, index=True).to_numpy().tobytes())
    elif isinstance(x, np.ndarray):
        if x.dtype == object:
            _feed(h, x.tolist())
        else:
            h.update(f"nd{x.dtype}{x.shape};".encode())
            h.update(np.ascontiguousarray(x).tobytes())
    elif isinstance(x, (list, tuple)):
        h.update(f"{type(x).__name__}[{len(x)}];".encode())
        for v in x:
            _feed(h, v)
    elif isinstance(x, Mapping):
        h.update(f"map[{len(x)}];".encode())
        for k in sorted(x, key=str):
            _feed(h, str(k))
            _feed(h, x[k])
    else:
        raise Unkeyable(type(x).__name__)


@lru_cache(maxsize=None)
def _module_source(module: str) -> str:
    try:
        return inspect.getsource(sys.modules[module])
    except (KeyError, OSError, TypeError):
        return ""


def figure_key(draw: Callable[..., bytes], args: tuple, kwargs: Mapping[str, Any]) -> str | None:
    """The key of ``draw(*args, **kwargs)``'s PNG, or None when an argument cannot be keyed."""
    from importlib import metadata

    h = hashlib.sha256()
    h.update(f"{draw.__module__}.{draw.__qualname__}\x1f{metadata.version('matplotlib')}\x1f".encode())
    h.update(hashlib.sha256(_module_source(draw.__module__).encode()).digest())
    try:
        _feed(h, list(args))
        _feed(h, dict(kwargs))
    except Unkeyable:
        return None
    return "fig-" + h.hexdigest()[:32]


def cached_png(cache, draw: Callable[..., bytes], *args: Any, **kwargs: Any) -> bytes:
    """``draw(*args, **kwargs)`` (PNG bytes), from ``cache`` (get_bytes/put_bytes by key) when the
    same figure was drawn before."""
    key = figure_key(draw, args, kwargs) if cache is not None else None
    if key is not None:
        png = cache.get_bytes(key)
        if png is not None:
            return png
    png = draw(*args, **kwargs)
    if key is not None and png:
        cache.put_bytes(key, png)
    return png
