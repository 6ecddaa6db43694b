"""API gateway: the only public entry of the system."""
