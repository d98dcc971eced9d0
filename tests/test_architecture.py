"""The rooms stay clear: ops/, models/ and warehouse/ import no Dagster; layers point one way; the
configuration schema does not import the demo; every asset depends on the assets whose tables it reads."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe)] if exe.exists() else [shutil.which("lint-imports") or "lint-imports"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert len(contracts) == 3
    assert f"{len(contracts)} kept, 0 broken" in r.stdout


def test_every_table_an_asset_reads_is_written_by_one_of_its_upstream_assets():
    """A build leaves out an asset whose upstream assets wrote the same content (assets/_inputs.py), so
    an asset must declare, directly or through its ancestors, every asset whose tables it reads. Read
    from the source of each asset function (and the module's private helpers it calls): the tables it
    writes with ``io.write("…")`` and reads with ``io.read("…")`` / ``read_table("…")``."""
    import ast
    import re

    from pipelines.definitions import ASSET_MODULES, defs

    graph = defs.resolve_asset_graph()
    bodies: dict[str, str] = {}
    for m in ASSET_MODULES:
        text = Path(m.__file__).read_text()
        funcs = {n.name: ast.get_source_segment(text, n) for n in ast.parse(text).body if isinstance(n, ast.FunctionDef)}
        for name, body in funcs.items():
            helpers = [b for h, b in funcs.items() if h.startswith("_") and re.search(rf"\b{h}\(", body)]
            bodies[name] = "\n".join([body, *helpers])
    keys = {k.to_user_string(): k for k in graph.get_all_asset_keys()}
    writes = {a: set(re.findall(r'io\.write\("(\w+)"', bodies[a])) for a in keys}
    producer = {t: a for a, ts in writes.items() for t in ts}
    assert {"unique_images", "annotations", "training_runs", "kept_images"} <= set(producer)

    def ancestors(k) -> set[str]:
        out, stack = set(), list(graph.get(k).parent_keys)
        while stack:
            a = stack.pop()
            if a not in out:
                out.add(a)
                stack.extend(graph.get(a).parent_keys)
        return {a.to_user_string() for a in out}

    undeclared = {}
    for a, k in keys.items():
        reads = set(re.findall(r'(?:io\.read|read_table)\("(\w+)"', bodies[a]))
        missing = {t: producer[t] for t in reads if t in producer and producer[t] != a and producer[t] not in ancestors(k)}
        if missing:
            undeclared[a] = missing
    assert not undeclared, f"assets reading tables of assets they do not depend on: {undeclared}"
