"""`python -m server` starts one instance (PORTA, SERVICE_NAME pick which)."""

from server.main import run

run()
