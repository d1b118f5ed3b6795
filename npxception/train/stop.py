"""Stopping a run cleanly on Ctrl-C or SIGTERM: the first signal asks, a second one acts at once."""

from __future__ import annotations

import signal
import threading

# The signals that stop a run cleanly: Ctrl-C, and what `kill`, systemd and batch schedulers send.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def install_stop_handlers(handler) -> dict:
    """Route the first Ctrl-C or SIGTERM to `handler(signum)` (a clean stop); a second one acts at
    once (KeyboardInterrupt, or termination). Returns the previous handlers to put back ({} where
    signals cannot be set: outside the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    # None: a handler set outside Python, which cannot be put back; the default stands in for it.
    previous = {signum: signal.getsignal(signum) or signal.SIG_DFL for signum in STOP_SIGNALS}

    def on_signal(signum, frame):
        for other, old in previous.items():
            signal.signal(other, old)
        handler(signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, on_signal)
    return previous
