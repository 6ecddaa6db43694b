"""The forwarding helpers keep end-to-end headers and drop hop-by-hop ones."""

from svc_common.forwarding.asgi import upstream_headers, upstream_target
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
    names = {name for name, _ in upstream_headers(scope, client_ip="10.0.0.9")}
    assert {b"authorization", b"content-type", b"x-forwarded-for", b"x-request-id"} <= names
    assert not names & {b"connection", b"x-secret-hop", b"keep-alive", b"transfer-encoding"}
    assert b"host" not in names


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
    assert headers[b"x-forwarded-for"] == b"1.2.3.4, 10.0.0.9"
    assert headers[b"x-forwarded-host"] == b"gw:8000"
    assert headers[b"x-request-id"] == b"rid-1"


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
    assert (inner[b"x-forwarded-host"], inner[b"x-forwarded-proto"]) == (
        b"api.example.org",
        b"https",
    )
    assert (edge[b"x-forwarded-host"], edge[b"x-forwarded-proto"]) == (b"balancer:8001", b"http")
    assert inner[b"x-forwarded-for"] == edge[b"x-forwarded-for"] == b"203.0.113.7, 10.0.0.2"


def test_upstream_target_keeps_the_clients_encoding() -> None:
    scope = _scope([], raw_path=b"/itens/a%2Fb", query_string=b"q=caf%C3%A9&x=1")
    assert upstream_target(scope) == b"/itens/a%2Fb?q=caf%C3%A9&x=1"


def test_route_labels_stay_bounded() -> None:
    assert route_label("/itens") == "/itens"
    assert route_label("/itens/123") == "/itens/{id}"
    assert route_label("/identidade") == "/identidade"
    assert route_label("/random/garbage/999") == "unmatched"
