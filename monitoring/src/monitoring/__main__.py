"""`python -m monitoring` starts the monitor."""

from monitoring.main import run

run()
