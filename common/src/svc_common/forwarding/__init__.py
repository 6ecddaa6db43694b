"""Forwarding a request upstream: header rewriting, the failure taxonomy, and the client.

`headers` and `failures` are the policy both paths of a proxy share; `pool`, `connection` and
`replies` are the keep-alive HTTP/1.1 client, one pool per upstream for both paths; `asgi`
forwards an ASGI request (any method, bodies both ways, the answer streamed) over it.
"""
