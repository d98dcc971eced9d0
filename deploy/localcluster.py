"""A whole emoforge deployment on 127.0.0.1, from the real pieces (README "Running on a cluster"):

    PostgreSQL     Dagster's instance storage (runs, events, schedules; dagster-postgres)
    RabbitMQ       the Celery broker (a dead worker's unacknowledged step is requeued at once)
    Redis          the Celery result backend and the global per-host download limiter
    moto server    S3-compatible object storage for the published tables and blobs
    code server    ``dagster api grpc -m pipelines.definitions`` (the code location "emoforge")
    daemon         ``dagster-daemon run``: the run queue, run monitoring, sensors and schedules
    workers        ``celery -A pipelines.celery_app worker`` (N of them, one step at a time each)
    demo server    ``emoforge demo-server``: the demo's web host, shared by all workers

``python deploy/localcluster.py up DIR`` starts everything under DIR and prints the environment a
shell needs to use it (``emoforge build --cluster DIR/workspace.yaml``); ``down DIR`` stops it.
Servers come from Debian packages (postgresql, rabbitmq-server, redis-server: ``make cluster-test``
installs them when missing) and the ``[cluster]`` extra. Every process binds 127.0.0.1 only, and
everything this starts is stopped by :meth:`LocalCluster.stop`, kill included.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), Path("/usr/lib/postgresql/bin"))
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, ready, proc: subprocess.Popen | None = None, log: Path | None = None,
             timeout: float = 180.0, every: float = 0.5) -> None:
    """Poll ``ready()`` until true (a server's readiness has no event to wait on); fail early and
    show the log tail if the process died."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready\n{tail}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s" + (f"; see {log}" if log else ""))
        time.sleep(every)


def _pids(name: str) -> set[int]:
    out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout
    return {int(x) for x in out.split()}


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class LocalCluster:
    root: Path
    data_dir: Path
    n_workers: int = 2
    demo_config: Path | None = None     # layered over the demo settings (the demo port)
    max_concurrent_runs: int = 4
    host_slots: int = 2                 # the global per-host download limit (Redis)
    ports: dict = field(default_factory=dict)
    procs: dict = field(default_factory=dict)

    # ---- configuration -------------------------------------------------------------------------

    def __post_init__(self):
        self.root = Path(self.root).resolve()
        self.data_dir = Path(self.data_dir).resolve()
        state = self.root / "cluster.json"
        if state.exists() and not self.ports:
            self.ports = json.loads(state.read_text())["ports"]
        for name in ("postgres", "rabbitmq", "rabbitmq_dist", "redis", "s3", "grpc"):
            self.ports.setdefault(name, free_port())

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def workspace(self) -> Path:
        return self.root / "workspace.yaml"

    def env(self) -> dict:
        """The environment every emoforge process of this deployment runs with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EMOFORGE_", "DAGSTER_"))}
        env.update(
            DAGSTER_HOME=str(self.home), EMOFORGE_HOME=str(self.data_dir), EMOFORGE_DEMO="1",
            EMOFORGE_EXECUTOR="celery",
            EMOFORGE_CELERY_BROKER=f"amqp://guest:guest@127.0.0.1:{self.ports['rabbitmq']}//",
            EMOFORGE_CELERY_BACKEND=f"redis://127.0.0.1:{self.ports['redis']}/0",
            EMOFORGE_HOST_LIMITER=f"redis://127.0.0.1:{self.ports['redis']}/1",
            EMOFORGE_OBJECT_STORE="s3://emoforge/" + self.data_dir.name,
            EMOFORGE_S3_ENDPOINT=f"http://127.0.0.1:{self.ports['s3']}",
            AWS_ACCESS_KEY_ID="emoforge", AWS_SECRET_ACCESS_KEY="emoforge-local", AWS_DEFAULT_REGION="us-east-1",
            DAGSTER_PG_URL=f"postgresql+psycopg2://emoforge:emoforge@127.0.0.1:{self.ports['postgres']}/dagster",
        )
        if self.demo_config:
            env["EMOFORGE_CONFIG"] = str(Path(self.demo_config).resolve())
        return env

    def write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text(f"""\
# Dagster instance of a local emoforge cluster (deploy/localcluster.py)
telemetry:
  enabled: false
storage:
  postgres:
    # psycopg2 named in the URL: SQLAlchemy 2.1 would otherwise pick psycopg 3, whose server-side
    # parameters break dagster-postgres's NOTIFY statements
    postgres_url:
      env: DAGSTER_PG_URL
run_coordinator:
  module: dagster._core.run_coordinator.queued_run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: {self.max_concurrent_runs}
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  poll_interval_seconds: 15
""")
        self.workspace.write_text(f"""\
load_from:
  - grpc_server:
      host: 127.0.0.1
      port: {self.ports['grpc']}
      location_name: emoforge
""")
        (self.root / "cluster.json").write_text(json.dumps({"ports": self.ports, "data_dir": str(self.data_dir)}))

    # ---- processes -----------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict | None = None, cwd: Path | None = None,
               user: str | None = None) -> subprocess.Popen:
        log = self.root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        if user:
            argv = ["runuser", "-u", user, "--", *argv]
        fh = open(log, "ab")
        proc = subprocess.Popen(argv, env=env or self.env(), cwd=cwd or REPO, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
        fh.close()
        self.procs[name] = proc
        (self.root / "pids").mkdir(exist_ok=True)
        (self.root / "pids" / name).write_text(str(proc.pid))
        return proc

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    @property
    def pg_root(self) -> Path:
        """PostgreSQL's files. As root the server runs as the ``postgres`` user, which cannot enter a
        private directory (pytest's): then a directory of its own under /tmp, named after ``root``."""
        if os.geteuid() != 0:
            return self.root / "postgres"
        import hashlib

        return Path("/tmp") / f"emoforge-pg-{hashlib.sha1(str(self.root).encode()).hexdigest()[:12]}"

    def start_postgres(self) -> None:
        pgdata = self.pg_root / "data"
        as_pg = os.geteuid() == 0    # PostgreSQL refuses to run as root
        if not (pgdata / "PG_VERSION").exists():
            pgdata.mkdir(parents=True, exist_ok=True)
            pwfile = self.pg_root / "pgpass"
            pwfile.write_text("emoforge\n")
            if as_pg:
                subprocess.run(["chown", "-R", "postgres", str(self.pg_root)], check=True)
            cmd = [str(PG_BIN / "initdb"), "-D", str(pgdata), "-U", "emoforge", "--pwfile", str(pwfile),
                   "-A", "scram-sha-256", "-E", "UTF8"]
            subprocess.run((["runuser", "-u", "postgres", "--"] if as_pg else []) + cmd, check=True,
                           stdout=subprocess.DEVNULL, cwd="/tmp")
        sock_dir = self.pg_root / "sock"
        sock_dir.mkdir(exist_ok=True)
        if as_pg:
            subprocess.run(["chown", "postgres", str(sock_dir)], check=True)
        p = self._spawn("postgres", [str(PG_BIN / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1",
                                     "-p", str(self.ports["postgres"]), "-k", str(sock_dir)],
                        user="postgres" if as_pg else None, cwd=Path("/tmp"))
        wait_for("PostgreSQL", lambda: _port_open(self.ports["postgres"]), p, self.log("postgres"))
        import psycopg2

        def db_ready() -> bool:
            try:
                psycopg2.connect(host="127.0.0.1", port=self.ports["postgres"], user="emoforge",
                                 password="emoforge", dbname="postgres").close()
                return True
            except psycopg2.OperationalError:
                return False

        wait_for("PostgreSQL connections", db_ready, p, self.log("postgres"))
        con = psycopg2.connect(host="127.0.0.1", port=self.ports["postgres"], user="emoforge",
                               password="emoforge", dbname="postgres")
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = 'dagster'")
            if cur.fetchone() is None:
                cur.execute("create database dagster")
        con.close()

    def start_rabbitmq(self) -> None:
        base = self.root / "rabbitmq"
        (base / "mnesia").mkdir(parents=True, exist_ok=True)
        conf = base / "rabbitmq.conf"
        conf.write_text(f"listeners.tcp.default = 127.0.0.1:{self.ports['rabbitmq']}\nloopback_users = none\n")
        node = f"emoforge{self.ports['rabbitmq']}@localhost"
        env = dict(self.env(), HOME=str(base), RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
                   RABBITMQ_LOG_BASE=str(base / "log"), RABBITMQ_NODENAME=node,
                   RABBITMQ_NODE_PORT=str(self.ports["rabbitmq"]), RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                   RABBITMQ_DIST_PORT=str(self.ports["rabbitmq_dist"]),
                   RABBITMQ_CONFIG_FILE=str(base / "rabbitmq"), RABBITMQ_PID_FILE=str(base / "pid"),
                   ERL_EPMD_ADDRESS="127.0.0.1",
                   RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}")
        self._epmd_before = _pids("epmd")
        p = self._spawn("rabbitmq", [str(RABBIT_BIN / "rabbitmq-server")], env=env, cwd=base)
        wait_for("RabbitMQ", lambda: _port_open(self.ports["rabbitmq"]), p, self.log("rabbitmq"))

    def start_redis(self) -> None:
        p = self._spawn("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(self.ports["redis"]),
                                  "--save", "", "--appendonly", "no", "--dir", str(self.root)])
        wait_for("Redis", lambda: _port_open(self.ports["redis"]), p, self.log("redis"))

    def start_s3(self) -> None:
        p = self._spawn("s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.ports["s3"])])
        wait_for("moto S3 server", lambda: _port_open(self.ports["s3"]), p, self.log("s3"))
        import boto3

        env = self.env()
        s3 = boto3.client("s3", endpoint_url=env["EMOFORGE_S3_ENDPOINT"], region_name="us-east-1",
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        if "emoforge" not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket="emoforge")

    def start_demo_server(self) -> None:
        p = self._spawn("demo_server", [str(BIN / "emoforge"), "demo-server"])
        wait_for("demo server", lambda: "serving" in self.log("demo_server").read_text(errors="replace"),
                 p, self.log("demo_server"), timeout=900)

    def start_code_server(self) -> None:
        p = self._spawn("code_server", [str(BIN / "dagster"), "api", "grpc", "-m", "pipelines.definitions",
                                        "-d", str(REPO), "-h", "127.0.0.1", "-p", str(self.ports["grpc"]),
                                        "--location-name", "emoforge"])
        wait_for("code server", lambda: _port_open(self.ports["grpc"]), p, self.log("code_server"), timeout=300)

    def start_daemon(self) -> None:
        self._spawn("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(self.workspace)])

    def start_worker(self, i: int) -> subprocess.Popen:
        name = f"worker{i}"
        p = self._spawn(name, [str(BIN / "celery"), "-A", "pipelines.celery_app", "worker", "-Q", "dagster",
                               "--concurrency", "1", "--prefetch-multiplier", "1", "-n", f"{name}@%h",
                               "--loglevel", "INFO", "--without-gossip", "--without-mingle"])
        wait_for(f"Celery {name}", lambda: " ready." in self.log(name).read_text(errors="replace"), p,
                 self.log(name), timeout=300)
        return p

    def start(self) -> "LocalCluster":
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        self.start_postgres()
        self.start_rabbitmq()
        self.start_redis()
        self.start_s3()
        self.start_demo_server()
        self.start_code_server()
        self.start_daemon()
        for i in range(1, self.n_workers + 1):
            self.start_worker(i)
        return self

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill one piece (its whole process group: a Celery worker with its pool child)."""
        proc = self.procs[name]
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(timeout=60)

    def stop(self) -> None:
        """Stop everything this started, in reverse order; SIGKILL what does not stop in 30 s."""
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=30)
        # RabbitMQ's Erlang port mapper outlives the broker: stop the one it started, if it did
        for pid in _pids("epmd") - getattr(self, "_epmd_before", _pids("epmd")):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        self.procs.clear()

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python deploy/localcluster.py")
    ap.add_argument("action", choices=["up", "env"])
    ap.add_argument("dir", help="where the cluster keeps its state and logs")
    ap.add_argument("--data-dir", help="the emoforge data directory (default DIR/data)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    c = LocalCluster(Path(args.dir), Path(args.data_dir or Path(args.dir) / "data"), n_workers=args.workers)
    if args.action == "env":
        for k, v in sorted(c.env().items()):
            if k.startswith(("EMOFORGE_", "DAGSTER_", "AWS_", "PG_")):
                print(f"export {k}={v}")
        return 0
    c.start()
    print(f"cluster up under {c.root}; `python deploy/localcluster.py env {args.dir}` prints its environment. "
          f"Ctrl-C stops it.", flush=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        c.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
