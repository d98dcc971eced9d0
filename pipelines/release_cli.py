"""``emoforge release`` and ``emoforge verify-release`` (see pipelines.cli for the other commands)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pipelines.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, _say


# ---- releases ------------------------------------------------------------------------------------

def _resource(args: argparse.Namespace):
    from assets.resources import EmoforgeResource

    env = EmoforgeResource.from_env()
    return EmoforgeResource(
        config_path=str(Path(args.config).resolve()) if args.config else (None if args.demo else env.config_path),
        data_dir=str(Path(args.data_dir).resolve()) if args.data_dir else env.data_dir,
        demo=bool(args.demo or (env.demo and not args.config)))


def cmd_release(args: argparse.Namespace) -> int:
    """Freeze the warehouse into releases/<name>/<version>/ (manifest, datasheet, changes) and export it."""
    from assets._io import config_fingerprint
    from ops.config import ConfigError, config_to_yaml
    from ops.release import make_release
    from warehouse.locks import BuildLocked, build_lock

    try:
        emo = _resource(args)
        settings, wh = emo.settings, emo.warehouse
    except ConfigError as e:
        print(f"emoforge release: {e}", file=sys.stderr)
        return EXIT_USAGE
    if not wh.tables_dir.is_dir() or not wh.table_names():
        print(f"emoforge release: no warehouse at {wh.root}: build the dataset first", file=sys.stderr)
        return EXIT_USAGE
    t0 = time.monotonic()
    last = [0.0]

    def progress(what: str, i: int, n: int) -> None:
        if time.monotonic() - last[0] > 1 or i == n:
            last[0] = time.monotonic()
            width = 30
            done = int(width * i / max(n, 1))
            print(f"\r  {what:<8} [{'#' * done}{'.' * (width - done)}] {i}/{n}", end="\n" if i == n else "", flush=True)
    try:
        with build_lock(wh.root, command=" ".join(["emoforge", *sys.argv[1:]])[:300]):
            out = make_release(wh, name=args.name, version=args.version, config_yaml=config_to_yaml(settings),
                               config_fingerprint=config_fingerprint(settings), formats=args.format or [],
                               progress=progress)
    except BuildLocked as e:
        print(f"emoforge release: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (FileExistsError, FileNotFoundError, ValueError) as e:
        print(f"emoforge release: {e}", file=sys.stderr)
        return EXIT_FAILED
    m = out["manifest"]
    state = "unchanged, already released" if out["reused"] else "written"
    _say(f"release {args.name} {args.version} {state}: {out['path']}")
    _say(f"  {len(m['tables'])} tables, {sum(m['tables'].values())} rows, {m['n_images']} images, "
         f"{len(m['files'])} files in the manifest ({time.monotonic() - t0:.1f} s)")
    changes = json.loads(out["changes"])
    if changes.get("previous"):
        moved = {n: c for n, c in changes["tables"].items() if any(c.get(k) for k in ("added", "removed", "changed"))}
        _say(f"  changes against {changes['previous']}: " + (", ".join(
            f"{n} +{c['added']} -{c['removed']} ~{c['changed']}" + (f" relabelled {c['relabelled']}" if c.get("relabelled") else "")
            for n, c in sorted(moved.items())) or "none"))
    for fmt, counts in out["exports"].items():
        _say(f"  export {fmt}: {out['export_paths'][fmt]}  " + "; ".join(
            f"{col} " + ", ".join(f"{s} {n}" for s, n in per.items()) for col, per in counts.items()))
    _say(f"  datasheet: {out['path'] / 'datasheet.md'}")
    return EXIT_OK


def cmd_verify_release(args: argparse.Namespace) -> int:
    """Check a release folder against its manifest: exit 0 when intact, 1 with the problems listed."""
    from ops.release.freeze import verify

    problems = verify(Path(args.path))
    if problems:
        print(f"emoforge verify-release: {len(problems)} problem(s) in {args.path}:", file=sys.stderr)
        for p in problems[:50]:
            print(f"  {p}", file=sys.stderr)
        return EXIT_FAILED
    _say(f"release {args.path} is intact")
    return EXIT_OK


