"""Serving HTTP: uvicorn's protocol with one write per response, and the lane below ASGI."""
