"""Stopping a run on SIGTERM or Ctrl-C at a step that every process agrees on, so that a checkpoint of
that step can be saved before the processes exit.

SIGTERM is how Cloud TPU (and most schedulers) announce maintenance or a spot preemption. In one
process a handler sets a flag that the loop reads after each step. In several processes the signal
may reach some of them only, and each must stop after the same step: JAX's preemption sync service
(started by `jax.distributed.initialize`, which owns the SIGTERM handler then) picks the step
after the largest one any process has reached, and `reached` turns true at that step on every
process. Ctrl-C (SIGINT) is handed to the same machinery; a second Ctrl-C aborts at once, without
a checkpoint (Python's KeyboardInterrupt). A repeated SIGTERM changes nothing: the save goes on.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

import jax
from jax.experimental import multihost_utils


class StopSignals:
    """A context manager that catches SIGTERM and SIGINT for the length of a run; `reached(step)`
    after every step says whether the run should save and stop there."""

    def __init__(self) -> None:
        self.signum: int | None = None  # the signal this process received, if any
        self._across_processes = jax.process_count() > 1
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        # Across processes SIGTERM stays with JAX's preemption notifier; SIGINT is forwarded to it.
        ours = (signal.SIGINT,) if self._across_processes else (signal.SIGINT, signal.SIGTERM)
        if threading.current_thread() is not threading.main_thread():
            ours = ()  # Python runs signal handlers in the main thread only
        # None: a handler installed outside Python, which cannot be put back; the default instead.
        self._previous = {s: signal.signal(s, self._handle) or signal.SIG_DFL for s in ours}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = self.signum or signum
        if signum == signal.SIGINT:  # the next Ctrl-C is Python's KeyboardInterrupt again
            signal.signal(signal.SIGINT, self._previous[signal.SIGINT])
        if self._across_processes:
            os.kill(os.getpid(), signal.SIGTERM)

    def reached(self, step: int) -> bool:
        """Whether to save `step` and stop; in several processes, call it at every step on every one."""
        if self._across_processes:
            return multihost_utils.reached_preemption_sync_point(step)
        return self.signum is not None

    @property
    def cause(self) -> str:
        """What stopped the run, for its last message."""
        if self.signum is not None:
            return signal.Signals(self.signum).name
        return "SIGTERM to one of the processes"  # JAX's notifier, not ours, caught it

    @property
    def exit_status(self) -> int:
        """128 + the signal this process received: 143 for SIGTERM, 130 for SIGINT; 143 for a
        process that stopped because another one received a signal."""
        return 128 + (self.signum or signal.SIGTERM)


__all__ = ["StopSignals"]
