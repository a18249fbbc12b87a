"""Keeps the AWS test harness's servers (moto via aws_env.py, hi_emulator.py,
metadata_server.py) from outliving their test: they run in their own sessions so that
`aws_env.py stop` can end them by PID, which also means a test killed with SIGKILL (a ctest
timeout) would leave them behind. Each server therefore exits by itself once its environment
directory is gone (the test's mktemp -d removed) or after a maximum lifetime."""

import os
import threading
import time


def start(watch_dir, max_lifetime):
    """Starts a daemon thread that calls os._exit(0) when watch_dir disappears or
    max_lifetime seconds have passed (0 = no limit). Either argument may be None."""
    if not watch_dir and not max_lifetime:
        return
    deadline = time.monotonic() + max_lifetime if max_lifetime else None

    def run():
        while True:
            time.sleep(1.0)
            if watch_dir and not os.path.isdir(watch_dir):
                os._exit(0)
            if deadline is not None and time.monotonic() > deadline:
                os._exit(0)

    threading.Thread(target=run, name="watchdog", daemon=True).start()
