"""The Snakemake executor: jobs become picas tokens, pilots run them, one query per round says how they are.

Snakemake (8 or 9; Python 3.11 or later) loads this module through the
package's lazy attributes.  What the executor does, and where:

* **submit** (:meth:`Executor.run_jobs`): every job Snakemake hands over at
  once becomes one token (:mod:`.jobs`), all written in one ``_bulk_docs``
  request; its input is the job's command as Snakemake formats it for remote
  execution, run from the workflow directory (shared file system) or after
  staging (:mod:`.remote`);
* **status** (:meth:`Executor.check_active_jobs`): one view query per round for
  every active job of the run (:mod:`.runview`), under Snakemake's
  ``--seconds-between-status-checks`` and its status rate limiter; a failed
  job is reported with the tail of its stderr and its logs as aux logs;
* **cancel** (:meth:`Executor.cancel_jobs`, on Ctrl-C): the run's todo tokens
  are deleted and its running ones marked, so their pilots stop the payload at
  their next heartbeat and save no result (:mod:`.store`);
* **local pilots** (``--picas-local-pilots N``): started with the run and
  stopped at its end (:mod:`.pilots`).

Connection settings come from the ``--picas-*`` options, the ``PICAS_*``
environment and picas' ``conf.yml``, exactly as for the ``picas`` command.

Snakemake imports every installed executor plugin in every process it starts,
so also in each job on a pilot: this module imports only what Snakemake needs
to list the plugin, and the client, staging and pilot machinery when a run
starts (that keeps a few tenths of a second off every job).
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, AsyncGenerator, List, Optional
from urllib.parse import urlsplit

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.settings import CommonSettings, ExecutorSettingsBase, SharedFSUsage

from picas import defaults
from picas.errors import InvalidInput, PicasError
from snakemake_executor_plugin_picas import jobs as jobtokens
from snakemake_executor_plugin_picas.runview import Outcome, outcome
from snakemake_executor_plugin_picas.settings import SETTINGS

if TYPE_CHECKING:
    from picas.config import Settings
    from snakemake_executor_plugin_picas.pilots import LocalPilots
    from snakemake_executor_plugin_picas.remote import RemoteFiles
    from snakemake_executor_plugin_picas.store import Failure

__all__ = ["Executor", "ExecutorSettings", "common_settings"]


def _settings_class() -> type:
    """The settings dataclass Snakemake reads, one field per :data:`.settings.SETTINGS` entry."""
    fields = []
    for setting in SETTINGS:
        kind = setting.type if setting.type is bool else Optional[setting.type]
        metadata = {"help": setting.help}
        if setting.metavar and setting.type is not bool:
            metadata["metavar"] = setting.metavar
        fields.append((setting.name, kind, dataclasses.field(default=setting.default, metadata=metadata)))
    return dataclasses.make_dataclass("ExecutorSettings", fields, bases=(ExecutorSettingsBase,),
                                      namespace={"__module__": __name__})


ExecutorSettings = _settings_class()


def _common_settings() -> CommonSettings:
    wanted = {
        "non_local_exec": True,
        # With a storage prefix there is no shared file system; without one there is. The user says which with
        # --shared-fs-usage (the profile from 'picas snakemake profile --storage-prefix' does), checked below.
        "implies_no_shared_fs": False,
        # Sources travel with each job through picas staging, not through a Snakemake storage plugin.
        "job_deploy_sources": False,
        "can_transfer_local_files": True,
        # Never 'pip install' storage plugins on a worker: pilots stage files themselves.
        "auto_deploy_default_storage_provider": False,
        "pass_default_storage_provider_args": True,
        "pass_default_resources_args": True,
        "pass_envvar_declarations_to_cmd": True,
        "init_seconds_before_status_checks": 0,
    }
    known = {field.name for field in dataclasses.fields(CommonSettings)}
    return CommonSettings(**{name: value for name, value in wanted.items() if name in known})


common_settings = _common_settings()


class Executor(RemoteExecutor):
    """Runs a Snakemake workflow's jobs as tokens of a picas pool."""

    def __post_init__(self) -> None:
        self.run_id = str(uuid.uuid4())
        options = self.workflow.executor_settings
        self.design = options.design_doc or defaults.DESIGN
        self.workdir = Path.cwd()
        self.logdir = self.workdir / ".snakemake" / "picas" / self.run_id
        self._stopped = False
        self._outage_since: float | None = None
        self.pilots: LocalPilots | None = None
        from picas.cli.options import make_client
        from snakemake_executor_plugin_picas.store import RunStore

        try:
            self.connection = _connection(options)
            self.client = make_client(self.connection)
            self.store = RunStore(self.client, self.run_id)
            self.store.prepare()
            self.store.ensure_pilot_design(self.design, self.design)
            # The status loop runs in a thread of its own: it gets a connection of its own.
            self.status_store = RunStore(self.client.copy(), self.run_id)
            self.remote = self._remote_files(options.storage_prefix)
        except PicasError as exc:
            # The hints name the picas command's options; here they are Snakemake's.
            message = str(exc).replace("pass --url", "pass --picas-url").replace("pass --db", "pass --picas-database")
            raise WorkflowError(f"picas: {message}") from None
        where = f"{self.client.url}/{self.client.database}"
        self.logger.info(f"picas: run {self.run_id}: jobs become tokens in {where} (design document {self.design})"
                         + (f", files travel through {self.remote.prefix}" if self.remote else ""))
        if options.local_pilots:
            from snakemake_executor_plugin_picas import pilots

            command = pilots.pilot_command(options.local_pilots, self.design, options.local_pilot_args)
            env = pilots.pilot_env(self.connection, self.client.url_list)
            self.pilots = pilots.LocalPilots(command, env, self.logdir / "pilots.log").start()
            self.logger.info(f"picas: started {options.local_pilots} local pilots (log: {self.pilots.log})")

    def _remote_files(self, prefix: str | None) -> RemoteFiles | None:
        usage = self.workflow.storage_settings.shared_fs_usage
        shared = [item for item in (SharedFSUsage.INPUT_OUTPUT, SharedFSUsage.SOURCES) if item in usage]
        if prefix:
            if shared:
                raise WorkflowError("picas: --picas-storage-prefix means there is no shared file system: also give "
                                    "--shared-fs-usage none (a profile from 'picas snakemake profile "
                                    "--storage-prefix' has it)")
            if not hasattr(self.workflow, "write_source_archive"):
                raise WorkflowError("picas: this Snakemake cannot pack the workflow sources for jobs without a "
                                    "shared file system; upgrade it (8.30 and 9.x are known to work)")
            from snakemake_executor_plugin_picas.remote import RemoteFiles

            return RemoteFiles(prefix, self.workdir)
        if SharedFSUsage.INPUT_OUTPUT not in usage:
            raise WorkflowError("picas: without a shared file system for inputs and outputs, give "
                                "--picas-storage-prefix URL: the storage folder through which files reach the pilots")
        return None

    # ------------------------------------------------------------------ submit
    def run_job(self, job: JobExecutorInterface) -> None:
        self.run_jobs([job])

    def run_jobs(self, jobs: List[JobExecutorInterface]) -> None:
        """Write one token per job, all in one request, then tell Snakemake which were submitted."""
        ready: list[tuple[JobExecutorInterface, jobtokens.JobSpec, dict]] = []
        for job in jobs:
            self.run_job_pre(job)
            try:
                spec = _spec(job, check_directories=self.remote is not None)
                ready.append((job, spec, self._token(job, spec)))
            except (PicasError, OSError) as exc:
                self.report_job_error(SubmittedJobInfo(job), msg=f"picas: could not submit the job: {exc}")
        if not ready:
            return
        try:
            problems = self.store.submit([body for _, _, body in ready])
        except PicasError as exc:
            problems = {body["_id"]: str(exc) for _, _, body in ready}
        for job, spec, body in ready:
            info = SubmittedJobInfo(job, external_jobid=body["_id"], aux={"spec": spec})
            if body["_id"] in problems:
                self.report_job_error(info, msg=f"picas: could not write token {body['_id']}: "
                                                f"{problems[body['_id']]}")
            else:
                self.report_job_submission(info)

    def _token(self, job: JobExecutorInterface, spec: jobtokens.JobSpec) -> dict:
        design = jobtokens.design_for(spec, self.design)
        self.store.ensure_pilot_design(design, self.design)
        exec_job = self.format_job_exec(job)
        if self.remote is None:
            return jobtokens.token_body(spec, self.run_id, design, jobtokens.in_workdir(str(self.workdir), exec_job))
        self.remote.upload_sources(self.workflow.write_source_archive)
        self.remote.upload_inputs(spec)
        command = self.remote.command(self.get_python_executable(), exec_job)
        return jobtokens.token_body(spec, self.run_id, design, command, self.remote.stage_fields(spec))

    # ------------------------------------------------------------------ status
    async def check_active_jobs(
        self, active_jobs: List[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        """One request for the whole run, then each job: still running, done, or failed."""
        if not active_jobs:
            return
        try:
            async with self.status_rate_limiter:
                states = await asyncio.to_thread(self.status_store.states,
                                                 [job_info.external_jobid for job_info in active_jobs])
        except PicasError as exc:
            self._server_trouble(exc)
            for job_info in active_jobs:
                yield job_info
            return
        self._outage_since = None
        self.logger.debug(f"picas: status round: {len(active_jobs)} active jobs of run {self.run_id} "
                          f"({self.status_store.rereads} rounds so far needed a second request)")
        for job_info in active_jobs:
            result = outcome(states.get(job_info.external_jobid))
            if result is Outcome.RUNNING:
                yield job_info
            elif result is Outcome.SUCCESS:
                await self._succeeded(job_info)
            else:
                await self._failed(job_info, missing=result is Outcome.MISSING)

    def _server_trouble(self, exc: PicasError) -> None:
        """Ride out a server outage for as long as a pilot would; then give up with the reason."""
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
        if now - self._outage_since > defaults.OUTAGE_TIMEOUT:
            raise WorkflowError(f"picas: the token pool has not answered for {defaults.OUTAGE_TIMEOUT:g} s: {exc}")
        self.logger.warning(f"picas: cannot read the status of run {self.run_id}, trying again: {exc}")

    async def _succeeded(self, job_info: SubmittedJobInfo) -> None:
        if self.remote is not None:
            try:
                await asyncio.to_thread(self.remote.fetch_outputs, job_info.aux["spec"])
            except (PicasError, OSError) as exc:
                self.report_job_error(job_info, msg=f"picas: token {job_info.external_jobid} is done, but its "
                                                    f"outputs could not be brought back: {exc}")
                return
        self.report_job_success(job_info)

    async def _failed(self, job_info: SubmittedJobInfo, missing: bool) -> None:
        from snakemake_executor_plugin_picas.store import Failure

        token_id = job_info.external_jobid
        if missing:
            failure = Failure(token_id, "the token is gone from the database (deleted while the job was active?)")
        else:
            try:
                failure = await asyncio.to_thread(self.status_store.failure, token_id)
            except PicasError as exc:
                failure = Failure(token_id, f"the job failed; its token could not be read: {exc}")
        aux_logs = self._write_logs(failure)
        self.report_job_error(job_info, msg=failure.summary(), aux_logs=aux_logs)

    def _write_logs(self, failure: Failure) -> list[str]:
        """The failed token's stdout and stderr as files Snakemake can point to."""
        paths = []
        for suffix, data in (("out", failure.stdout), ("err", failure.stderr)):
            if not data:
                continue
            path = self.logdir / f"{failure.token_id}.{suffix}"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            except OSError:
                continue
            paths.append(str(path))
        return paths

    # ------------------------------------------------------------------ cancel and end
    def cancel_jobs(self, active_jobs: List[SubmittedJobInfo]) -> None:
        """Ctrl-C: delete the run's waiting tokens, mark its running ones; nothing of another run is touched."""
        from snakemake_executor_plugin_picas.store import RunStore

        try:
            store = RunStore(self.client.copy(), self.run_id)  # the main thread's client may be mid-request
            report = store.cancel(f"cancelled: Snakemake run {self.run_id} was interrupted")
        except PicasError as exc:
            self.logger.error(f"picas: could not cancel the tokens of run {self.run_id}: {exc}; pilots may still run "
                              f"them (see 'picas tokens list')")
            return
        self.logger.info(f"picas: cancelled run {self.run_id}: deleted {report.deleted} waiting tokens; "
                         f"{report.marked} running jobs stop at their pilot's next heartbeat")
        if report.left:
            self.logger.warning(f"picas: {len(report.left)} tokens kept changing and were left as they are: "
                                f"{', '.join(report.left[:5])}")

    def shutdown(self) -> None:
        super().shutdown()
        if self._stopped:
            return
        self._stopped = True
        if self.pilots is not None:
            self.pilots.stop()
        # A run that failed to start has no connection or storage to close.
        for closable in (getattr(self, "remote", None), getattr(getattr(self, "status_store", None), "client", None),
                         getattr(self, "client", None)):
            if closable is not None:
                closable.close()


# ---------------------------------------------------------------------- helpers
def _connection(options: object) -> Settings:
    """The connection as the picas command resolves it: options, then PICAS_* variables, then conf.yml."""
    from picas.config import resolve

    url = getattr(options, "url", None)
    if url and urlsplit(url.split(",")[0].strip()).password:
        raise WorkflowError("picas: --picas-url holds a password; give it in PICAS_PASSWORD or picas' config file "
                            "('picas init'), never on the command line or in a profile")
    verify = False if getattr(options, "insecure", False) else (getattr(options, "ca_bundle", None) or None)
    config = getattr(options, "config", None)
    return resolve({"url": url, "database": getattr(options, "database", None),
                    "username": getattr(options, "username", None), "password": None, "verify": verify},
                   profile=getattr(options, "profile", None), env=os.environ,
                   path=Path(os.path.expanduser(config)) if config else None)


def _files(items: object) -> list:
    return [item for item in (items or ()) if item]


def _spec(job: JobExecutorInterface, check_directories: bool = False) -> jobtokens.JobSpec:
    """What the token needs of a Snakemake job (a group job: its members' files, the group's name)."""
    members = list(job.jobs) if job.is_group() else [job]
    outputs = [f for member in members for f in _files(member.output)]
    if check_directories:
        for path in outputs:
            if (getattr(path, "flags", None) or {}).get("directory"):
                raise InvalidInput(f"the output {path} is a directory(); without a shared file system picas "
                                   f"stages files only")
    made = {str(f) for f in outputs}
    inputs = [str(f) for member in members for f in _files(member.input) if str(f) not in made]
    extra = [str(f) for member in members for f in _files(member.log)]
    extra += [str(member.benchmark) for member in members if getattr(member, "benchmark", None)]
    resources = {name: value for name, value in job.resources.items()}
    return jobtokens.JobSpec(
        rule=job.name if job.is_group() else job.rule.name,
        jobid=job.jobid,
        attempt=job.attempt,
        threads=job.threads,
        wildcards={} if job.is_group() else dict(getattr(job, "wildcards_dict", None) or {}),
        resources=resources,
        inputs=tuple(dict.fromkeys(inputs)),
        outputs=tuple(dict.fromkeys(str(f) for f in outputs)),
        extra_outputs=tuple(dict.fromkeys(extra)),
    )
