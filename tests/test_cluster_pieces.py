"""The parts of running on a cluster that need no cluster: the executor switch, the build lock a
cluster build shares with its runs' steps, the CLI's refusals, and object storage over real S3 HTTP
(moto's server in this process, on 127.0.0.1). The whole deployment: tests/cluster, make cluster-test."""

from __future__ import annotations

import json
import multiprocessing as mp
import uuid

import pandas as pd
import pytest

from pipelines.cli import main


def test_the_executor_is_in_process_unless_celery_is_asked_for(monkeypatch):
    from dagster import in_process_executor

    from pipelines.definitions import executor_from_env

    monkeypatch.delenv("EMOFORGE_EXECUTOR", raising=False)
    assert executor_from_env() is in_process_executor
    monkeypatch.setenv("EMOFORGE_EXECUTOR", "kubernetes")
    with pytest.raises(ValueError, match="'in_process' or 'celery'"):
        executor_from_env()
    monkeypatch.setenv("EMOFORGE_EXECUTOR", "celery")
    monkeypatch.delenv("EMOFORGE_CELERY_BROKER", raising=False)
    with pytest.raises(ValueError, match="EMOFORGE_CELERY_BROKER"):
        executor_from_env()
    monkeypatch.setenv("EMOFORGE_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
    monkeypatch.setenv("EMOFORGE_CELERY_BACKEND", "redis://127.0.0.1:6379/0")
    ex = executor_from_env()
    assert ex.name == "celery"


def test_the_definitions_load_with_the_celery_executor(monkeypatch):
    """What the code server and the workers load: every job runs its steps on Celery."""
    import pipelines.definitions as d

    monkeypatch.setenv("EMOFORGE_EXECUTOR", "celery")
    monkeypatch.setenv("EMOFORGE_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
    defs = d.build_definitions(resources=d.resources_from_env())
    job = defs.resolve_job_def("scrape_batch_job")
    assert job.executor_def.name == "celery"


def test_the_worker_app_shares_the_settings_that_requeue_a_dead_workers_step(monkeypatch):
    import importlib

    monkeypatch.setenv("EMOFORGE_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
    monkeypatch.setenv("EMOFORGE_CELERY_BACKEND", "redis://127.0.0.1:6379/0")
    import pipelines.celery_app as ca

    ca = importlib.reload(ca)
    conf = ca.app.conf
    assert conf.task_acks_late is True and conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_url.startswith("amqp://") and "execute_plan" in ca.app.tasks


def _hold(data_dir, build_id, ready, release):
    from warehouse.locks import build_lock

    with build_lock(data_dir, command="cluster build", build_id=build_id):
        ready.set()
        release.wait(60)


@pytest.mark.slow
def test_a_cluster_builds_lock_admits_its_own_steps_only(tmp_path):
    from warehouse.locks import BuildLocked, build_lock, held_by

    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold, args=(tmp_path, "b-123", ready, release))
    p.start()
    try:
        assert ready.wait(60)
        assert held_by(tmp_path, build_id="b-123")            # a step of that build may run
        assert not held_by(tmp_path, build_id="b-999")        # another build's step may not
        assert not held_by(tmp_path, build_id="", run_id="")
        with pytest.raises(BuildLocked, match="cluster build"):
            with build_lock(tmp_path):
                pass
    finally:
        release.set()
        p.join(60)
    assert not held_by(tmp_path, build_id="b-123")            # released with its process


def test_build_refuses_a_missing_workspace_file(tmp_path, clean_env, capsys):
    rc = main(["build", "--demo", "--data-dir", str(tmp_path / "d"), "--cluster", str(tmp_path / "nope.yaml")])
    assert rc == 2
    assert "nope.yaml: no such workspace file" in capsys.readouterr().err


def test_publish_without_a_store_or_a_warehouse_says_why(tmp_path, clean_env, capsys):
    assert main(["publish", "--data-dir", str(tmp_path)]) == 2
    assert "EMOFORGE_OBJECT_STORE" in capsys.readouterr().err
    assert main(["publish", "--data-dir", str(tmp_path), "--to", "s3://bucket/x"]) == 2
    assert "build something first" in capsys.readouterr().err


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server, in this process, on 127.0.0.1 (real HTTP: s3fs and boto3 talk to it)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("EMOFORGE_S3_ENDPOINT", s3_endpoint)
    bucket = f"emo-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/demo"


@pytest.mark.slow
def test_tables_written_to_s3_are_queried_back_through_the_cli(tmp_path, clean_env, s3_env, s3_endpoint, capsys):
    import boto3

    from warehouse.store import Warehouse

    clean_env.setenv("EMOFORGE_OBJECT_STORE", s3_env)
    wh = Warehouse(tmp_path / "data").ensure()
    wh.write_table("image_hashes", pd.DataFrame({"sha256": ["a", "b"], "phash": ["0f", "f0"]}), partition="b1")
    wh.write_table("image_hashes", pd.DataFrame({"sha256": ["c"], "phash": ["ff"]}), partition="b2")
    sha = wh.blobs.put(b"some image bytes")
    bucket, prefix = s3_env[5:].split("/", 1)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}
    assert {f"{prefix}/tables/image_hashes/b1.parquet", f"{prefix}/tables/image_hashes/b2.parquet",
            f"{prefix}/blobs/{sha[:2]}/{sha[2:4]}/{sha}", f"{prefix}/state/catalog.json"} <= keys
    assert main(["sql", "--object-store", s3_env, "--format", "json",
                 "select sha256 from image_hashes order by sha256"]) == 0
    assert [r["sha256"] for r in json.loads(capsys.readouterr().out)] == ["a", "b", "c"]
    assert main(["sql", "--object-store", s3_env, "copy (select 1) to 's3://x/y.csv'"]) == 1
    assert "read-only" in capsys.readouterr().err
