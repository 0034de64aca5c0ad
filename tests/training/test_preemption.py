"""The signals of a run in one process: SIGTERM and Ctrl-C ask it to stop (128 + the signal), a
repeated SIGTERM changes nothing, a second Ctrl-C aborts, and the handlers before the run come back
after it. The runs themselves are in test_train_loop.py and test_adapt.py."""

import os
import signal
import time

import pytest

from embeddinggemma.training.preemption import StopSignals


def deliver(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.01)  # Python runs the handler in the main thread, at its next instruction


def test_sigterm_asks_to_stop_with_status_143_and_a_repeated_one_changes_nothing():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with StopSignals() as stop:
        assert not stop.reached(1)
        deliver(signal.SIGTERM)
        deliver(signal.SIGTERM)
        assert stop.reached(2) and (stop.cause, stop.exit_status) == ("SIGTERM", 143)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_ctrl_c_asks_to_stop_with_status_130_and_a_second_one_aborts():
    # Python's own Ctrl-C handler before the run: one that an earlier test in this worker left
    # (an unclosed asyncio runner's, say) need not raise at once; seen once in a full run.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with StopSignals() as stop:
            deliver(signal.SIGINT)
            assert stop.reached(1) and (stop.cause, stop.exit_status) == ("SIGINT", 130)
            with pytest.raises(KeyboardInterrupt):
                deliver(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, inherited)
