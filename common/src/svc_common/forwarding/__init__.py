"""Forwarding a request upstream: header rewriting, the failure taxonomy, and the clients.

`headers` and `failures` are the policy both paths of a proxy share; `pool` and `connection`
are the keep-alive HTTP/1.1 client the lane forwards over; `asgi` forwards an ASGI request
(bodies and streamed answers) over aiohttp.
"""
