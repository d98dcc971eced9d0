"""The Celery side of cluster runs (dagster-celery): the settings both ends share, and the app
the workers start with::

    EMOFORGE_CELERY_BROKER=amqp://guest:guest@127.0.0.1:5672// \\
    EMOFORGE_CELERY_BACKEND=redis://127.0.0.1:6379/0 \\
    celery -A pipelines.celery_app worker -Q dagster --concurrency 1 -n w1@%h

The run worker (the process the daemon's run launcher starts for a run) submits each step as a
Celery task to the ``dagster`` queue; a worker executes it against the same instance (PostgreSQL)
and data directory, and returns the step's events.
"""

from __future__ import annotations

import os

# acks_late + reject_on_worker_lost: a step whose worker dies (kill -9, a lost machine) goes back to
# the queue and runs again on another worker; with RabbitMQ as broker the message is requeued as
# soon as the dead worker's connection closes (with Redis only after its visibility timeout, which
# must then exceed the longest step). The steps are idempotent (atomic table writes, journaled
# downloads that resume), so a rerun neither loses nor repeats rows.
CELERY_SETTINGS = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
}


def celery_args() -> dict:
    """Broker, result backend and settings from the environment (the same for submitters and workers)."""
    broker = os.environ.get("EMOFORGE_CELERY_BROKER")
    if not broker:
        raise ValueError("EMOFORGE_EXECUTOR=celery needs EMOFORGE_CELERY_BROKER (e.g. amqp://guest:guest@127.0.0.1:5672//)")
    cfg = {"broker": broker, "config_source": dict(CELERY_SETTINGS)}
    if os.environ.get("EMOFORGE_CELERY_BACKEND"):
        cfg["backend"] = os.environ["EMOFORGE_CELERY_BACKEND"]
    return cfg


def _worker_app():
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task

    a = make_app(CeleryExecutor.for_cli(**celery_args()).app_args())
    return a, create_task(a)


if os.environ.get("EMOFORGE_CELERY_BROKER"):   # `celery -A pipelines.celery_app worker`
    app, execute_plan = _worker_app()
