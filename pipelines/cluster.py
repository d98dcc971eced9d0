"""Builds on a Dagster deployment: runs submitted to the instance's queue, executed by the daemon's
run launcher and the Celery workers, not in this process.

``emoforge build --cluster WORKSPACE`` plans exactly as a local build does (same phases, same named
jobs, same skipping of built batches) and hands each run to :class:`ClusterRunner`, which creates it
against the code location named in the workspace file (the gRPC code server the daemon also uses),
submits it to the instance's run coordinator and waits for it. Scrape batches are submitted
together, so the daemon runs as many at once as ``max_concurrent_runs`` allows and their steps
spread over all workers. The build's outcome is read back from the run's events in the instance
(PostgreSQL on a cluster), in the same shape a local run reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from dagster import DagsterRunStatus

TERMINAL = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@dataclass
class RunOutcome:
    """What a finished cluster run reports, with the interface ``cli._report`` reads from a local
    ``execute_run`` result (``success``, ``all_events``, ``get_asset_materialization_events``)."""

    run_id: str
    status: DagsterRunStatus
    all_events: list = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.status == DagsterRunStatus.SUCCESS

    def get_asset_materialization_events(self) -> list:
        return [e for e in self.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]


class ClusterRunner:
    """Creates, submits and waits for runs of the code location a workspace file names."""

    def __init__(self, instance, workspace_file: str | Path, location: str = "emoforge"):
        self.instance = instance
        self.workspace_file = str(Path(workspace_file).resolve())
        self.location_name = location
        self._ctx = None
        self._process_ctx = None

    def __enter__(self) -> "ClusterRunner":
        from dagster import __version__
        from dagster._core.workspace.context import WorkspaceProcessContext
        from dagster._core.workspace.load_target import WorkspaceFileTarget

        self._process_ctx = WorkspaceProcessContext(
            instance=self.instance, version=__version__, read_only=False,
            workspace_load_target=WorkspaceFileTarget(paths=[self.workspace_file]))
        self._process_ctx.__enter__()
        self._ctx = self._process_ctx.create_request_context()
        errors = self._ctx.get_code_location_error(self.location_name) if self._ctx.has_code_location_name(self.location_name) else None
        if not self._ctx.has_code_location_name(self.location_name):
            names = sorted(self._ctx.code_location_names) if hasattr(self._ctx, "code_location_names") else []
            raise RuntimeError(f"{self.workspace_file} has no code location {self.location_name!r} (it has {names})")
        if errors is not None:
            raise RuntimeError(f"the code location {self.location_name!r} of {self.workspace_file} failed to load: "
                               f"{errors.message.strip()}")
        return self

    def __exit__(self, *exc) -> None:
        if self._process_ctx is not None:
            self._process_ctx.__exit__(*exc)

    def submit(self, job_name: str, asset_keys: list, partition: str | None, run_config: dict, tags: dict) -> str:
        """Create the run (a subset of the named job) and put it in the instance's queue."""
        from dagster._core.definitions.selector import JobSubsetSelector

        loc = self._ctx.get_code_location(self.location_name)
        repo = next(iter(loc.get_repositories().values()))
        selector = JobSubsetSelector(location_name=self.location_name, repository_name=repo.name,
                                     job_name=job_name, op_selection=None, asset_selection=set(asset_keys))
        remote_job = loc.get_job(selector)
        plan = loc.get_execution_plan(remote_job, run_config, step_keys_to_execute=None, known_state=None,
                                      instance=self.instance)
        if partition is not None:
            tags = {**tags, "dagster/partition": partition}
        run = self.instance.create_run(
            job_name=job_name, run_id=None, run_config=run_config,
            resolved_op_selection=remote_job.resolved_op_selection,
            step_keys_to_execute=plan.execution_plan_snapshot.step_keys_to_execute,
            op_selection=None, status=None, root_run_id=None, parent_run_id=None,
            tags={**remote_job.tags, **tags}, job_snapshot=remote_job.job_snapshot,
            execution_plan_snapshot=plan.execution_plan_snapshot,
            parent_job_snapshot=remote_job.parent_job_snapshot,
            remote_job_origin=remote_job.get_remote_origin(), job_code_origin=remote_job.get_python_origin(),
            asset_selection=frozenset(asset_keys), asset_check_selection=None, asset_graph=repo.asset_graph)
        self.instance.submit_run(run.run_id, self._ctx)
        return run.run_id

    def wait(self, run_ids: list[str], on_done=None, poll_s: float = 1.0) -> dict[str, RunOutcome]:
        """Wait until every run is finished (the daemon and the workers do the work; this process
        only reads the instance). ``on_done(outcome)`` is called as each one finishes."""
        pending, done = list(run_ids), {}
        while pending:
            for rid in list(pending):
                run = self.instance.get_run_by_id(rid)
                if run is not None and run.status in TERMINAL:
                    events = [r.dagster_event for r in self.instance.all_logs(rid) if r.dagster_event is not None]
                    done[rid] = RunOutcome(rid, run.status, events)
                    pending.remove(rid)
                    if on_done is not None:
                        on_done(done[rid])
            if pending:
                time.sleep(poll_s)   # polling another process's progress in the shared instance
        return done
