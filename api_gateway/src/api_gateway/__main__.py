"""`python -m api_gateway` starts the gateway."""

from api_gateway.main import run

run()
