"""Running the Snakemake workflow for ``dvp run``: Snakemake supervised in a process group of its own.

The entry point of every run of the pipeline: the config and sheets are checked
(:func:`dvp_pipeline.config.load_project`), what an interrupted run left behind is cleared, and
Snakemake runs the workflow shipped in ``dvp_pipeline/workflow``, whose rules call the stage commands.

Snakemake runs in a process group of its own, so that dvp decides how it stops:

- the first Ctrl-C, SIGTERM or SIGHUP to dvp becomes one SIGINT to Snakemake and its jobs, which
  is Snakemake's clean stop: the jobs end, Snakemake removes their incomplete outputs and its lock,
  and dvp exits with 128 + the signal's number (130 for Ctrl-C) once it has. (Snakemake's own
  SIGTERM handling would wait for every running job to finish, which can be hours on a cluster.)
- a second one sends SIGTERM to the group, and SIGKILL after :data:`GRACE_S` seconds; a third,
  SIGKILL at once.
- if dvp itself dies (SIGKILL, out of memory), a watchdog stops the group the same way. The watchdog
  is a small process that waits on a pipe only dvp can write to: the kernel closes it however dvp
  ends, on any POSIX system, and the whole group (Snakemake and its jobs) is stopped, where Linux's
  PR_SET_PDEATHSIG would reach Snakemake alone, and only from a ``preexec_fn``, which is unsafe in a
  process with threads.

So the next ``dvp run`` resumes: it passes ``--rerun-incomplete``, removes a lock that no live
Snakemake process holds (Snakemake's ``--unlock``) and the temporary files of killed jobs.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from dvp_pipeline.errors import DVPError
from dvp_pipeline.io import TEMPORARY_NAME
from dvp_pipeline.layout import Results

__all__ = ["GRACE_S", "RUN_MARKER", "STOP_SIGNALS", "clear_interrupted_run", "run_snakemake", "snakemake_processes"]

log = logging.getLogger("dvp.run")

#: Seconds between SIGTERM and SIGKILL when a stop is forced.
GRACE_S = 10.0
_SIGHUP = getattr(signal, "SIGHUP", None)  # the terminal closed (POSIX only)
#: Signals that stop a run.
STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, _SIGHUP) if s is not None)
#: Written by each run next to Snakemake's own metadata: on which host its Snakemake runs.
RUN_MARKER = Path(".snakemake") / "dvp-run.json"


# --- before a run: what an interrupted run left behind -------------------------------------------------


def snakemake_processes(directory: Path) -> list[int]:
    """Ids of the Snakemake processes on this host working in ``directory`` (``--directory`` or their own)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.pid == os.getpid() or not any(Path(arg).name == "snakemake" for arg in cmdline):
            continue
        try:
            workdir = Path(proc.cwd())
        except (psutil.Error, OSError):
            continue
        for i, arg in enumerate(cmdline):
            if arg in ("--directory", "-d") and i + 1 < len(cmdline):
                workdir = workdir / cmdline[i + 1]
            elif arg.startswith("--directory="):
                workdir = workdir / arg.split("=", 1)[1]
        if workdir.resolve() == directory:
            found.append(proc.pid)
    return found


def clear_interrupted_run(directory: Path, *, unlock: list[str]) -> None:
    """Remove the lock and the temporary files of a run that was killed before it could clean up.

    Only when no Snakemake process works in ``directory`` on this host and the last ``dvp run`` there (if
    any) ran on this host too; otherwise a lock is left to Snakemake, which refuses to start and says so.
    """
    running = snakemake_processes(directory)
    if running:
        log.warning("Snakemake (pid %s) is running in %s: its lock stays", ", ".join(map(str, running)), directory)
        return
    host = _last_run(directory).get("host", socket.gethostname())
    if host != socket.gethostname():
        log.warning(
            "the last run in %s was on host %s: if it is gone and Snakemake finds its lock, `dvp run -- --unlock`",
            directory,
            host,
        )
        return
    remove_orphan_temporaries(directory / Results().root)
    locks = directory / ".snakemake" / "locks"
    if not (locks.is_dir() and any(locks.iterdir())):
        return
    done = subprocess.run(unlock, cwd=directory, capture_output=True, text=True)
    if done.returncode != 0:
        raise DVPError(f"{directory}: could not remove the stale Snakemake lock:\n{done.stderr[-2000:]}")
    log.info("removed the lock left in %s by an interrupted run (no Snakemake process is running there)", directory)


def remove_orphan_temporaries(root: Path) -> None:
    """Delete the temporary files of killed jobs under ``root``.

    :func:`dvp_pipeline.io.atomic_output` writes ``.{stem}.tmp{pid}{suffix}`` and renames it when complete;
    one whose process is gone belongs to a job that was killed, and would never be renamed.
    """
    if not root.is_dir():
        return
    removed = 0
    for folder, _, names in os.walk(root):
        for name in names:
            match = TEMPORARY_NAME.match(name)
            if match and not psutil.pid_exists(int(match.group(1))):
                Path(folder, name).unlink(missing_ok=True)
                removed += 1
    if removed:
        log.info("removed %d temporary file(s) of interrupted jobs under %s", removed, root)


def _last_run(directory: Path) -> dict:
    try:
        return json.loads((directory / RUN_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


# --- the run: Snakemake in its own process group -------------------------------------------------------

# Runs as `python -c`: waits on a pipe whose only writer is dvp. A byte means dvp finished normally; end of
# file without one means dvp died, and Snakemake's group is stopped as dvp would have: SIGINT (a clean stop),
# then SIGTERM and SIGKILL for as long as any process of the group is left.
_WATCHDOG = """\
# dvp run: the watchdog of Snakemake's process group
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
group, pipe, grace = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
try:
    finished = os.read(pipe, 1)
except OSError:
    finished = b""

def gone(seconds):
    end = time.monotonic() + seconds
    while True:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.2)

if not finished:
    for signum, wait in ((signal.SIGINT, 6 * grace), (signal.SIGTERM, grace), (signal.SIGKILL, 0)):
        try:
            os.killpg(group, signum)
        except ProcessLookupError:
            break
        if gone(wait):
            break
"""


class _Snakemake:
    """Snakemake running in a process group of its own, stopped by the signals dvp gets."""

    def __init__(self, cmd: list[str], *, directory: Path):
        self.cmd, self.directory = cmd, directory
        self.proc: subprocess.Popen | None = None
        self.received: list[int] = []
        self.acted = 0
        self.kill_at: float | None = None

    def run(self) -> int:
        previous = {}
        for signum in STOP_SIGNALS:
            # nohup's SIGHUP stays ignored; SIGINT and SIGTERM are always ours, so Snakemake starts with them
            # at their defaults even when dvp was started with them ignored (a background job of a script)
            if signum != _SIGHUP or signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, self._on_signal)
        watchdog = None
        try:
            self.proc = subprocess.Popen(self.cmd, cwd=self.directory, start_new_session=True)
            watchdog = self._start_watchdog()
            self._mark_run()
            self._act()  # on signals that came while it started
            while True:
                try:
                    status = self.proc.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    if self.kill_at is not None and time.monotonic() >= self.kill_at:
                        self._signal_group(signal.SIGKILL)
                        self.kill_at = None
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            finished = self.proc is not None and self.proc.returncode is not None
            if watchdog is None and self.proc is not None and not finished:
                self._signal_group(signal.SIGINT)  # an error in dvp before the watchdog ran
            if watchdog is not None:
                # finished: the watchdog exits at once; otherwise (an error in dvp) it stops the group
                process, pipe = watchdog
                if finished:
                    os.write(pipe, b"x")
                os.close(pipe)
                if finished:
                    process.wait()
            if finished:
                (self.directory / RUN_MARKER).unlink(missing_ok=True)
        if self.received:
            return 128 + self.received[0]
        return status if status >= 0 else 128 - status

    def _on_signal(self, signum, frame) -> None:
        self.received.append(signum)
        if self.proc is not None:
            self._act()

    def _act(self) -> None:
        """Escalate once per stop signal received and not yet acted on."""
        while self.acted < len(self.received):
            self.acted += 1
            self._stop(self.acted)

    def _stop(self, count: int) -> None:
        if count == 1:
            log.warning(
                "stopping Snakemake: its jobs end, their incomplete outputs and its lock are removed "
                "(Ctrl-C again to force; `dvp run` again resumes)"
            )
            self._signal_group(signal.SIGINT)
        elif count == 2:
            log.warning("forcing the stop: SIGTERM to Snakemake and its jobs, SIGKILL in %.0f s", GRACE_S)
            self._signal_group(signal.SIGTERM)
            self.kill_at = time.monotonic() + GRACE_S
        else:
            self._signal_group(signal.SIGKILL)

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.proc.pid, signum)
        except ProcessLookupError:
            pass

    def _start_watchdog(self) -> tuple[subprocess.Popen, int]:
        """Start the watchdog of Snakemake's group; return it and the pipe's write end, which only dvp holds."""
        read, write = os.pipe()
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-c", _WATCHDOG, str(self.proc.pid), str(read), str(GRACE_S)],
                pass_fds=(read,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            os.close(write)
            raise
        finally:
            os.close(read)
        return process, write

    def _mark_run(self) -> None:
        marker = self.directory / RUN_MARKER
        try:
            marker.parent.mkdir(exist_ok=True)
            marker.write_text(json.dumps({"host": socket.gethostname(), "pid": self.proc.pid}), encoding="utf-8")
        except OSError as err:  # a read-only project can still be dry-run
            log.debug("cannot write %s: %s", marker, err)


def run_snakemake(cmd: list[str], *, directory: Path) -> int:
    """Run Snakemake in ``directory`` in a process group of its own; return its exit status.

    After a stop signal to dvp the status is 128 + that signal's number, once Snakemake has stopped.
    """
    return _Snakemake(cmd, directory=directory).run()
