"""The commands for running emoforge beyond one machine (README "Running on a cluster"):

    emoforge demo-server [--data-dir DIR] [--config FILE]   the demo's web host as a long-lived service
    emoforge publish [--data-dir DIR] [--to s3://bucket/prefix]   copy tables, blobs, catalog to object storage

(``emoforge build --cluster WORKSPACE`` and ``emoforge sql --object-store URL`` live in cli.py.)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipelines.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, _say


def cmd_demo_server(args: argparse.Namespace) -> int:
    """Serve the demo corpus of a demo build until SIGTERM/Ctrl-C: the one demo host of a cluster
    build, which the steps on every worker then reuse (a step alone would start its own server on
    the fixed port and stop it when it ends, under another worker's downloads)."""
    import signal
    import threading

    from assets.resources import EmoforgeResource
    from ops.config import ConfigError
    from ops.demo.server import DemoServer
    from ops.demo.site import build_site

    try:
        env = EmoforgeResource.from_env()   # flags win over EMOFORGE_CONFIG / EMOFORGE_HOME
        emo = EmoforgeResource(config_path=str(Path(args.config).resolve()) if args.config else env.config_path,
                               data_dir=str(Path(args.data_dir).resolve()) if args.data_dir else env.data_dir, demo=True)
        demo = emo.settings.acquisition.provider.demo
    except ConfigError as e:
        print(f"emoforge demo-server: {e}", file=sys.stderr)
        return EXIT_USAGE
    site = build_site(emo.demo_site_dir, n_images=demo.n_images, seed=demo.seed, world=demo.world)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with DemoServer(emo.demo_site_dir, site.entries, host="127.0.0.1", port=demo.port) as srv:
            _say(f"emoforge demo-server: serving {len(site.entries)} corpus entries on {srv.base_url}")
            try:
                stop.wait()
            except KeyboardInterrupt:
                pass
    except OSError as e:
        print(f"emoforge demo-server: cannot listen on 127.0.0.1:{demo.port}: {e.strerror}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def cmd_publish(args: argparse.Namespace) -> int:
    from warehouse.objectstore import ENV_ENDPOINT, ObjectStore, publish
    from warehouse.store import Warehouse

    wh = Warehouse(args.data_dir)
    url = args.to or os.environ.get("EMOFORGE_OBJECT_STORE")
    if not url:
        print("emoforge publish: no object store: pass --to s3://bucket/prefix or set EMOFORGE_OBJECT_STORE",
              file=sys.stderr)
        return EXIT_USAGE
    if not wh.db_path.exists():
        print(f"emoforge publish: no warehouse at {wh.root}: build something first", file=sys.stderr)
        return EXIT_USAGE
    try:
        store = ObjectStore(url, os.environ.get(ENV_ENDPOINT) or None)
        out = publish(wh.root, store)
    except ValueError as e:
        print(f"emoforge publish: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        print(f"emoforge publish: {url}: {e}", file=sys.stderr)
        return EXIT_FAILED
    _say(f"published {wh.root} to {store.url}: {out['uploaded']} files uploaded ({out['bytes'] / 1e6:.1f} MB), "
         f"{out['unchanged']} unchanged")
    _say(f'  query it:  emoforge sql --object-store {store.url} "select count(*) from unique_images"')
    return EXIT_OK
