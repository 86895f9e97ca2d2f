"""Jobs that depend on each other, run side by side on the CPU's cores.

The experiment's trainings and evaluations are independent of each other except where one reads
what another wrote (an evaluation reads its model's checkpoint). On a machine with few cores,
running two of them at once, one torch thread each, finishes sooner than running them one after the
other with two threads: torch's intra-op threads scale imperfectly on small layers (on the 2-core
machine of the quick study a training step on one thread takes 1.6x the time of two threads, not
2x), and much of an evaluation (marching cubes, surface sampling, containment) runs on one core
anyway. :func:`run_jobs` starts each job as soon as the jobs it needs are done, longest chain first,
in up to ``workers`` processes that each get their share of the torch threads.

With ``workers=1`` the jobs run in this process, one after another in the same order, with their
output on the console; with more, each job's output goes to its log file and the console shows
which jobs run and how far each has got.
"""

from __future__ import annotations

import concurrent.futures as futures
import dataclasses
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .errors import UserError


@dataclasses.dataclass(frozen=True)
class Job:
    """One unit of work: ``function(*args)``, after the jobs named in ``after``.

    ``function`` must be a module-level function (it is pickled to a worker process). ``weight`` is
    its expected cost in any unit shared by the jobs of one call: of the jobs ready to start, the
    one with the heaviest chain of work behind it starts first. ``progress``, read in this process
    only, says how far the running job has got (for example from the metrics file it writes).
    """

    name: str
    function: Callable[..., Any]
    args: tuple = ()
    after: tuple[str, ...] = ()
    weight: float = 0.0
    log: Path | None = None
    progress: Callable[[], str] | None = dataclasses.field(default=None, compare=False)


def _chains(jobs: dict[str, Job]) -> dict[str, float]:
    """Each job's weight plus the heaviest chain of jobs that wait for it."""
    waiting: dict[str, list[str]] = {name: [] for name in jobs}
    for job in jobs.values():
        for before in job.after:
            waiting[before].append(job.name)
    chain: dict[str, float] = {}

    def of(name: str, seen: tuple[str, ...] = ()) -> float:
        if name in seen:
            raise ValueError(f"jobs wait for each other in a cycle: {' -> '.join((*seen, name))}")
        if name not in chain:
            chain[name] = jobs[name].weight + max((of(n, (*seen, name)) for n in waiting[name]), default=0.0)
        return chain[name]

    for name in jobs:
        of(name)
    return chain


def order(jobs: list[Job]) -> list[Job]:
    """The jobs in the order one worker runs them: each after what it needs, heaviest chain first."""
    by_name = _check(jobs)
    chain = _chains(by_name)
    done: set[str] = set()
    ordered: list[Job] = []
    while len(ordered) < len(jobs):
        ready = [j for j in jobs if j.name not in done and all(a in done for a in j.after)]
        job = max(ready, key=lambda j: chain[j.name])  # max keeps the first of equal chains: list order
        ordered.append(job)
        done.add(job.name)
    return ordered


def _check(jobs: list[Job]) -> dict[str, Job]:
    by_name: dict[str, Job] = {}
    for job in jobs:
        if job.name in by_name:
            raise ValueError(f"two jobs are named {job.name!r}")
        by_name[job.name] = job
    for job in jobs:
        unknown = [a for a in job.after if a not in by_name]
        if unknown:
            raise ValueError(f"job {job.name!r} waits for unknown job(s) {unknown}")
    _chains(by_name)  # no cycles
    return by_name


# -- worker side -----------------------------------------------------------------------------------


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run_logged(function: Callable[..., Any], args: tuple, log: Path | None) -> float:
    """Run ``function(*args)`` with this process's stdout and stderr (file descriptors included, so
    libraries' own output too) appended to ``log``; returns the seconds it took."""
    start = time.perf_counter()
    if log is None:
        function(*args)
        return time.perf_counter() - start
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "a", buffering=1) as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            function(*args)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    return time.perf_counter() - start


# -- scheduler side --------------------------------------------------------------------------------


def _failed(job: Job, exc: BaseException) -> Exception:
    where = f" (its output: {job.log})" if job.log is not None else ""
    if isinstance(exc, UserError):
        return UserError(f"{job.name}: {exc}{where}")
    return RuntimeError(f"{job.name} failed: {type(exc).__name__}: {exc}{where}")


def run_jobs(jobs: list[Job], workers: int = 1, threads: int | None = None, say: Callable[[str], None] = print) -> dict[str, float]:
    """Run every job, each after the jobs it needs, in up to ``workers`` processes at once; returns
    the seconds each job took.

    ``threads`` is each worker's torch thread count (default: this process's count shared out
    among the workers, at least one). The first job to fail stops the rest: jobs not yet started
    are dropped, running ones finish, and its error is raised (a :class:`UserError` stays one,
    prefixed with the job's name and its log file).
    """
    if workers < 1:
        raise UserError(f"workers must be at least 1 (got {workers})")
    if not jobs:
        return {}
    if workers == 1 or len(jobs) == 1:
        seconds = {}
        for job in order(jobs):
            say(f"  {job.name}: started")
            seconds[job.name] = _run_logged(job.function, job.args, None)  # errors as they are: the output is here
            say(f"  {job.name}: done in {seconds[job.name]:.0f} s")
        return seconds
    return _run_side_by_side(jobs, workers, threads, say)


def _run_side_by_side(jobs: list[Job], workers: int, threads: int | None, say: Callable[[str], None]) -> dict[str, float]:
    import torch
    from tqdm import tqdm

    by_name = _check(jobs)
    chain = _chains(by_name)
    threads = threads or max(1, torch.get_num_threads() // workers)
    seconds: dict[str, float] = {}
    running: dict[futures.Future, Job] = {}
    waiting = list(jobs)
    context = mp.get_context("spawn")
    pool = futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(threads,))
    bar = tqdm(total=len(jobs), desc=f"jobs ({workers} side by side, {threads} thread(s) each)", unit="job", dynamic_ncols=True)
    try:
        while waiting or running:
            ready = [j for j in waiting if all(a in seconds for a in j.after)]
            ready.sort(key=lambda j: -chain[j.name])
            for job in ready[: workers - len(running)]:
                waiting.remove(job)
                running[pool.submit(_run_logged, job.function, job.args, job.log)] = job
                _say_above(bar, say, f"  {job.name}: started" + (f" (output: {job.log})" if job.log else ""))
            finished, _ = futures.wait(running, timeout=2.0, return_when=futures.FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                exc = future.exception()
                if exc is not None:
                    raise _failed(job, exc) from exc
                seconds[job.name] = future.result()
                _say_above(bar, say, f"  {job.name}: done in {seconds[job.name]:.0f} s")
                bar.update(1)
            bar.set_postfix_str(", ".join(_status(job) for job in running.values()), refresh=True)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        bar.close()
    pool.shutdown(wait=True)
    return seconds


def _say_above(bar, say: Callable[[str], None], line: str) -> None:
    """``say`` a line above the progress bar (the bar is cleared and drawn again below it)."""
    with bar.external_write_mode():
        say(line)


def _status(job: Job) -> str:
    if job.progress is None:
        return job.name
    try:
        return f"{job.name} {job.progress()}"
    except Exception:  # noqa: BLE001 - a progress file half-written or not there yet
        return job.name
