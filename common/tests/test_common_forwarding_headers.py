"""The forwarding helpers keep end-to-end headers and drop hop-by-hop ones."""

from svc_common.forwarding.asgi import upstream_headers, upstream_url
from svc_common.forwarding.headers import route_label
from svc_common.logging import request_id_var


def _scope(headers: list[tuple[bytes, bytes]], **extra: object) -> dict:
    return {"type": "http", "headers": headers, "scheme": "http", "path": "/itens"} | extra


def test_hop_by_hop_and_connection_listed_headers_are_dropped() -> None:
    scope = _scope(
        [
            (b"host", b"example.org"),
            (b"connection", b"keep-alive, x-secret-hop"),
            (b"x-secret-hop", b"1"),
            (b"keep-alive", b"timeout=5"),
            (b"transfer-encoding", b"chunked"),
            (b"authorization", b"Bearer t"),
            (b"content-type", b"application/json"),
        ]
    )
    names = {name.lower() for name, _ in upstream_headers(scope, client_ip="10.0.0.9")}
    assert {"authorization", "content-type", "x-forwarded-for", "x-request-id"} <= names
    assert not names & {"connection", "x-secret-hop", "keep-alive", "transfer-encoding", "host"}


def test_forwarded_for_is_appended_and_request_id_passed_on() -> None:
    token = request_id_var.set("rid-1")
    try:
        headers = dict(
            upstream_headers(
                _scope([(b"x-forwarded-for", b"1.2.3.4"), (b"host", b"gw:8000")]),
                client_ip="10.0.0.9",
            )
        )
    finally:
        request_id_var.reset(token)
    assert headers["x-forwarded-for"] == "1.2.3.4, 10.0.0.9"
    assert headers["x-forwarded-host"] == "gw:8000"
    assert headers["x-request-id"] == "rid-1"


def test_an_inner_hop_passes_on_the_clients_forwarded_host_and_proto() -> None:
    scope = _scope(
        [
            (b"host", b"balancer:8001"),
            (b"x-forwarded-host", b"api.example.org"),
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-for", b"203.0.113.7"),
        ]
    )
    inner = dict(upstream_headers(scope, client_ip="10.0.0.2", keep_forwarded=True))
    edge = dict(upstream_headers(scope, client_ip="10.0.0.2"))
    assert (inner["x-forwarded-host"], inner["x-forwarded-proto"]) == ("api.example.org", "https")
    assert (edge["x-forwarded-host"], edge["x-forwarded-proto"]) == ("balancer:8001", "http")
    assert inner["x-forwarded-for"] == edge["x-forwarded-for"] == "203.0.113.7, 10.0.0.2"


def test_upstream_url_keeps_the_clients_encoding() -> None:
    scope = _scope([], raw_path=b"/itens/a%2Fb", query_string=b"q=caf%C3%A9&x=1")
    assert (
        str(upstream_url("http://lb:8001/", scope)) == "http://lb:8001/itens/a%2Fb?q=caf%C3%A9&x=1"
    )


def test_route_labels_stay_bounded() -> None:
    assert route_label("/itens") == "/itens"
    assert route_label("/itens/123") == "/itens/{id}"
    assert route_label("/random/garbage/999") == "unmatched"
