"""`python -m load_balancer` starts the balancer."""

from load_balancer.main import run

run()
