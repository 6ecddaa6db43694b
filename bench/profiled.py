"""Run a service's module with cProfile off until SIGUSR1, writing its calls at SIGUSR2.

    PROFILE_OUT=/tmp/x.prof python -m bench.profiled api_gateway

Only the main thread (the event loop) is profiled: the signals' handlers run there.
"""

import cProfile
import os
import runpy
import signal
import sys


def main() -> None:
    """Run sys.argv[1] as __main__, its profiler switched by signals."""
    profile = cProfile.Profile()
    out = os.environ["PROFILE_OUT"]

    def stop(*_: object) -> None:
        profile.disable()
        # Whole or not at all: the bench reads the file as soon as it appears.
        profile.dump_stats(f"{out}.part")
        os.replace(f"{out}.part", out)

    signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
    signal.signal(signal.SIGUSR2, stop)
    module = sys.argv[1]
    sys.argv = [module]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
