"""``pipeline.predict_files`` as a Ray Data job: the same inputs, plan, writers and
report as the local engine, with the predictions spread over the actors of a Ray
cluster (``depthlens predict ... --engine ray``).

The driver (the process that calls ``predict_files``) plans the inputs as the local
engine does: the sink names every output and skips what an earlier run finished; the
planned inputs are cut into the same units (``batch_size`` images, or a shard). The
units go into Ray's object store a window at a time (the driver never holds a million
paths) and become the rows of a dataset; ``map_batches`` hands them, one per call, to
a pool of actors, each of which loads the model once and runs ``pipeline.UnitWork``:
read, predict (batches of one network input size, no padding), write with the same
atomic writers. The results come back in unit order (``preserve_order``), and the
driver commits them (manifest lines, shard index) and reports them, so the outputs
are byte-identical to a local run's on the same inputs.

An actor that dies (its machine lost, killed) is restarted by Ray and its unit run
again elsewhere (Ray Data's actor pools retry without limit); since every file is
written atomically and recorded only by the driver once its unit is back, a unit run
twice leaves nothing half-written and nothing listed twice. A failing input is a line
of the report, never the end of the job.

Every path (inputs, outputs, weights) must mean the same on every node: on a cluster,
shared storage mounted at the same place.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from depthlens.errors import UsageError
from depthlens.models.estimator import Estimator
from depthlens.pipeline import InputResult, ModelChoice, Unit, UnitWork

WINDOW = 64  # units per object-store entry while the plan is shipped


def import_ray(local: bool = False) -> Any:
    """The ``ray`` module, or ``UsageError`` saying how to install it. ``local``: for a
    cluster of this machine alone, whose traffic then stays on 127.0.0.1 (Ray otherwise
    binds the machine's reachable address; its single-machine mode, read when ``ray``
    is first imported, keeps to the loopback)."""
    if local:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
        import ray.data  # ray[data]: pyarrow, pandas
    except ImportError:
        raise UsageError("The Ray engine needs Ray Data: pip install 'depthlens[ray]'.") from None
    return ray


@dataclass
class RayEngine:
    """Runs a ``predict_files`` job on Ray: ``address`` of a running cluster (``auto``:
    the one this machine belongs to; ``HOST:PORT``), or None for a local cluster on this
    machine, started for the job (and stopped after it) on 127.0.0.1. ``actors`` model
    copies (None: as many as the cluster's CPUs allow), each with ``cpus_per_actor``
    CPUs (its torch threads) and ``gpus_per_actor`` GPUs. Each actor's unit of work is
    ``batches_per_unit`` batches (a shard when the sink says so)."""

    address: str | None = None
    actors: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    takes_videos: bool = False
    # A unit of 8 batches: the driver handles a result per unit (about 4 ms of its CPU),
    # so units of one batch would cap a job near 240 images/s (BENCHMARKS.md).
    batches_per_unit: int = 8
    actors_used: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.actors is not None and self.actors < 1:
            raise UsageError(f"--actors must be at least 1, not {self.actors}.")
        if not self.cpus_per_actor > 0:
            raise UsageError(f"--cpus-per-actor must be positive, not {self.cpus_per_actor}.")

    def run(
        self,
        work: UnitWork,
        units: Iterator[Unit],
        choice: ModelChoice | Estimator,
        on_image: Callable[[], None],
    ) -> Iterator[tuple[list[InputResult], str, str]]:
        """Each unit's final results, in unit order (see the module)."""
        if not isinstance(choice, ModelChoice):
            raise UsageError(
                "The Ray engine loads the model on each actor: give a model name or a "
                "weights path, not a loaded Estimator."
            )
        choice.check()  # a wrong name or missing weights: one sentence, before Ray starts
        ray = import_ray(local=self.address is None)
        first = next(units, None)
        if first is None:  # everything skipped or failed already: no cluster needed
            return
        started = self._connect(ray)
        try:
            windows, count = _ship(ray, itertools.chain([first], units))
            yield from self._run(ray, work, choice, windows, count, on_image)
        finally:
            if started:
                ray.shutdown()

    def _connect(self, ray: Any) -> bool:
        """Join the cluster at ``address``, or start a local one; True if started here."""
        # Ray's own lines (its C++ core's warnings, Ray Data's plan and progress logs) stay
        # in its log files; the terminal shows depthlens's report. RAY_BACKEND_LOG_LEVEL
        # set by the user wins.
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        if ray.is_initialized():
            return False
        quiet = {"log_to_driver": False, "logging_level": "ERROR", "include_dashboard": False}
        try:
            if self.address is None:
                ray.init(**quiet)
            else:
                ray.init(address=self.address, **quiet)
        except ConnectionError as exc:
            raise UsageError(f"Cannot reach the Ray cluster at {self.address}: {exc}") from None
        return True

    def _run(
        self,
        ray: Any,
        work: UnitWork,
        choice: ModelChoice,
        windows: list[Any],
        count: int,
        on_image: Callable[[], None],
    ) -> Iterator[tuple[list[InputResult], str, str]]:
        from ray.data import ActorPoolStrategy, DataContext

        DataContext.get_current().execution_options.preserve_order = True
        DataContext.get_current().enable_progress_bars = False
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        size = self.actors or max(1, int(cpus // self.cpus_per_actor))
        self.actors_used = min(size, count)
        # Row k is unit k, a block of its own: the pool spreads blocks over its actors, and
        # a unit whose actor dies is the only work run again. (from_items, not range: a
        # read task would wait for a CPU that the actors hold.)
        ids = [{"id": index} for index in range(count)]
        rows = ray.data.from_items(ids, override_num_blocks=count)
        threads = max(1, int(self.cpus_per_actor))
        done = rows.map_batches(
            _Worker,
            batch_size=1,
            compute=ActorPoolStrategy(size=self.actors_used),
            fn_constructor_kwargs={
                "work": replace(work, on_passes=None),  # a callback of this process
                "choice": choice,
                "threads": threads,
                "windows": windows,
            },
            num_cpus=self.cpus_per_actor,
            num_gpus=self.gpus_per_actor or None,
        )
        for row in done.iter_rows():
            results: list[InputResult] = pickle.loads(row["results"])
            for _ in results:
                on_image()
            yield results, str(row["model"]), str(row["weights"])


def _ship(ray: Any, units: Iterator[Unit]) -> tuple[list[Any], int]:
    """Put the plan's units into the object store ``WINDOW`` at a time; the windows'
    references and the number of units."""
    windows: list[Any] = []
    window: list[bytes] = []
    count = 0
    for unit in units:
        window.append(pickle.dumps(unit))
        count += 1
        if len(window) == WINDOW:
            windows.append(ray.put(window))
            window = []
    if window:
        windows.append(ray.put(window))
    return windows, count


class _Worker:
    """One actor of the pool: the model loaded once, then one unit per call (unit ``k``
    is entry ``k % WINDOW`` of window ``k // WINDOW``)."""

    def __init__(self, work: UnitWork, choice: ModelChoice, threads: int, windows: list[Any]):
        import torch

        torch.set_num_threads(threads)
        self.work = work
        self.windows = windows
        self.estimator = choice.load()
        self._window: tuple[int, list[bytes]] = (-1, [])

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        import ray

        results, models, weights = [], [], []
        for index in batch["id"]:
            number, offset = divmod(int(index), WINDOW)
            if self._window[0] != number:
                self._window = (number, ray.get(self.windows[number]))
            unit: Unit = pickle.loads(self._window[1][offset])
            results.append(pickle.dumps(self.work.run(self.estimator, unit)))
            models.append(self.estimator.name)
            weights.append(self.estimator.weights)
        return {"results": results, "model": models, "weights": weights}
