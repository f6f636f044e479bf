"""The Ray executor: each model's cells in one Ray actor, its engine started once there.

The driver (``pipeline.run_category``) opens the parent run; each actor opens its cells' child
runs under it in the same store and experiment (``MLFLOW_TRACKING_URI`` and the experiment id
travel in the actor's ``runtime_env``, so does ``SPECBENCH_CACHE``: on several nodes it must be a
shared filesystem).  An actor asks for one CPU and, on a cluster with GPUs, the GPUs its engine
spans (tensor x pipeline parallel; with vLLM's ``ray`` backend vLLM places its own workers, so
the actor holds none).  The driver sends an actor one cell at a time: a worker killed mid-cell
(SIGKILL, out of memory) fails that cell only, recorded on its run; the actor is restarted and
the model's other cells go on.  The killed cell is not retried: what killed a worker once (a
prompt that runs it out of memory, a crashing kernel) most likely kills it again, and a retry
would cost another engine start; the next identical invocation redoes it in the same run.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from specbench import tracking
from specbench.pipeline.category_plan import PlannedCell
from specbench.pipeline.executors import (
    ExecutorContext,
    ExecutorError,
    cell_row,
    earlier_run_id,
    register_executor,
    split_resumed,
)
from specbench.pipeline.plan import CellPlan

WORKER_RESTARTS = 2  # a model's actor comes back after a lost worker, twice; then its cells fail fast
RESEND_WAIT_S = 1.0  # before a cell whose actor was restarting is sent again (times the attempts)
CPUS_PER_MODEL = 1
# what a worker needs of the driver's environment: the store, the cache, the hub, engine settings
PASSED_PREFIXES = ("SPECBENCH_", "HF_", "VLLM_", "MLFLOW_", "TRANSFORMERS_", "TOKENIZERS_", "OPENAI_BASE_URL",
                   "PYTHONWARNINGS")
# the driver's project run and experiment choice; the CLI's quiet-log file of vLLM (this machine's path:
# workers log to Ray's session logs)
NOT_PASSED = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "VLLM_LOGGING_CONFIG_PATH", "VLLM_CONFIGURE_LOGGING")


class WorkerLost(RuntimeError):
    """The Ray worker serving a cell died while it ran (recorded on the cell's run)."""


def absolute_uri(uri: str) -> str:
    """A tracking URI every worker reads the same way: a relative sqlite path made absolute
    (workers do not share the driver's working directory)."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + os.path.abspath(uri.removeprefix("sqlite:///"))
    if "://" not in uri and not uri.startswith("databricks"):
        return os.path.abspath(uri)
    return uri


def worker_env(ctx: ExecutorContext) -> dict[str, str]:
    """The actor's environment: the store and experiment of the parent run, the cache, and vLLM's
    settings for running inside a Ray worker (its engine processes spawned, not forked: a forked
    child would inherit the Ray worker's threads)."""
    from specbench.weights import cache_dir

    env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_PREFIXES) and k not in NOT_PASSED}
    env.update({"MLFLOW_TRACKING_URI": absolute_uri(tracking.tracking_uri()),
                "MLFLOW_EXPERIMENT_ID": ctx.experiment_id, "SPECBENCH_CACHE": str(cache_dir().resolve())})
    env.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    return env


def gpus_for(plan: CellPlan, cluster_gpus: float) -> int:
    """GPUs the model's actor holds: none on a cluster without GPUs (the cells run on CPUs, as
    planned), none with vLLM's ``ray`` backend (vLLM reserves its own across nodes), else TP x PP."""
    if plan.remote or cluster_gpus <= 0:
        return 0
    par = plan.parallelism
    return 0 if par.backend == "ray" else par.gpus


class ModelWorker:
    """One model's actor: a ``ModelRunner`` in a Ray worker process."""

    def __init__(self, first: CellPlan, use_cache: bool) -> None:
        for name in NOT_PASSED:  # runtime_env cannot unset what the raylet's environment had
            os.environ.pop(name, None)
        from specbench.pipeline.executors.runner import ModelRunner

        self.runner = ModelRunner(first, use_cache)

    def pid(self) -> int:
        return os.getpid()

    def run(self, cell: PlannedCell, parent_run_id: str, run_id: str | None) -> dict[str, Any]:
        return self.runner.run(cell, parent_run_id, run_id)

    def close(self) -> None:
        self.runner.close()


@register_executor("ray")
class RayExecutor:
    """Cells on a Ray cluster: ``address`` (else $RAY_ADDRESS, else a local cluster started here)."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self._started = False

    def start(self) -> None:
        """Connect before any run is opened: an unreachable cluster is one line, nothing recorded."""
        import ray

        if ray.is_initialized():  # the caller's cluster (a test's, a notebook's)
            return
        try:
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:  # a local cluster for this command; the dashboard is not needed for it
                ray.init(include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ExecutorError(f"Ray cluster {self.address or '(local)'}: {tracking.error_line(exc)}; start one "
                                "with `ray start --head` and give --ray-address or RAY_ADDRESS") from None
        self._started = True

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def run(self, groups: list[list[PlannedCell]], ctx: ExecutorContext) -> Iterator[dict[str, Any]]:
        import ray

        self.start()
        worker = ray.remote(ModelWorker)
        env = worker_env(ctx)
        cluster_gpus = ray.cluster_resources().get("GPU", 0)
        actors: list[Any] = []
        queues: list[deque[PlannedCell]] = []
        pending: dict[Any, tuple[int, PlannedCell]] = {}
        unreached: dict[str, int] = {}  # cell -> times its actor was gone before the cell started

        def submit(i: int) -> None:
            if queues[i]:
                cell = queues[i].popleft()
                pending[actors[i].run.remote(cell, ctx.parent_run_id, earlier_run_id(cell, ctx))] = (i, cell)
            elif actors[i] is not None:  # the model is done: its CPU and GPUs go to a model still waiting
                _stop([actors[i]])
                actors[i] = None

        try:
            for cells in groups:
                done, left = split_resumed(cells, ctx)
                yield from done
                todo = deque(left)
                if not todo:
                    continue
                first = todo[0].plan
                assert first is not None  # runnable cells have plans
                gpus = gpus_for(first, cluster_gpus)
                why = unschedulable(gpus)
                if why:
                    yield from (cell_row(c, "failed", note=f"{c.model}: {why}") for c in todo)
                    continue
                actors.append(worker.options(num_cpus=CPUS_PER_MODEL, num_gpus=gpus, max_restarts=WORKER_RESTARTS,
                                             max_task_retries=0, runtime_env={"env_vars": env},
                                             name=None).remote(first, ctx.use_cache))
                queues.append(todo)
                submit(len(actors) - 1)
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                i, cell = pending.pop(ref)
                try:
                    row = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker died, or its actor is restarting or gone
                    row = lost_cell(cell, ctx, exc, last_try=unreached.get(cell.name, 0) >= WORKER_RESTARTS)
                if row is None:  # the cell never started (its actor was restarting): sent again, not a retry
                    unreached[cell.name] = unreached.get(cell.name, 0) + 1
                    queues[i].appendleft(cell)
                    time.sleep(RESEND_WAIT_S * unreached[cell.name])  # the actor's restart takes a moment
                else:
                    yield row
                submit(i)
        finally:
            _stop([a for a in actors if a is not None])


def unschedulable(gpus: int) -> str | None:
    """Why no node of the cluster can ever hold an actor asking for ``gpus`` GPUs (Ray would wait forever)."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(r.get("CPU", 0) >= CPUS_PER_MODEL and r.get("GPU", 0) >= gpus for r in nodes):
        return None
    most = max((r.get("GPU", 0) for r in nodes), default=0)
    return (f"needs {gpus} GPU(s) and {CPUS_PER_MODEL} CPU on one node; the Ray cluster's largest node has "
            f"{most:g} GPU(s)")


def lost_cell(cell: PlannedCell, ctx: ExecutorContext, exc: BaseException,
              last_try: bool = False) -> dict[str, Any] | None:
    """The row of a cell whose actor failed it, by what its run says: FINISHED (the worker died
    after it) stays so; RUNNING (the worker died during it) ends FAILED with the reason; no run
    opened (the actor was restarting, or gone) is None, to send again, until ``last_try``."""
    assert cell.plan is not None
    runs = tracking.search([ctx.experiment_id], {"config_hash": cell.plan.config_hash()}, parent=ctx.parent_run_id)
    done = [r for r in runs if r.status == tracking.FINISHED]
    if done:
        return cell_row(cell, "finished", done[0].run_id, done[0].metrics, cell.plan.dataset.main_metric)
    started = [r for r in runs if r.status == "RUNNING"]
    if not started and not last_try:
        return None
    why = (f"worker lost ({type(exc).__name__}): the Ray worker serving {cell.model} died during this cell "
           "(killed, out of memory or crashed); not retried, a re-run redoes it") if started else (
           f"worker lost ({type(exc).__name__}): the Ray actor of {cell.model} is gone (restarted "
           f"{WORKER_RESTARTS} times); a re-run redoes this cell")
    run_id = started[0].run_id if started else ""
    if run_id:
        try:
            with tracking.open_run("cell", resume=run_id, parent=ctx.parent_run_id, take_over=True):
                raise WorkerLost(why)
        except WorkerLost:
            pass
        except Exception as exc:  # noqa: BLE001 - the store refused (e.g. the run still looks held): say so
            why += f" (its run could not be marked FAILED: {tracking.error_line(exc)})"
    return cell_row(cell, "failed", run_id, note=why)


def _stop(actors: list[Any]) -> None:
    """Each actor's engine closed (its memory and processes given back), then the actor ended."""
    import ray

    closing = [a.close.remote() for a in actors]
    try:
        ray.wait(closing, num_returns=len(closing), timeout=120)
    except Exception:  # noqa: BLE001, S110 - a dead actor has nothing to close
        pass
    for actor in actors:
        ray.kill(actor, no_restart=True)
