#!/usr/bin/env bash
# Fast smoke test of all six services. Start them first (`make up` or `docker compose up`).
# Base URLs can be overridden: GATEWAY_URL, BALANCER_URL, SERVER_URL, SERVER2_URL,
# CACHE_URL, MONITOR_URL. Exits non-zero if any check fails.
set -uo pipefail

GATEWAY_URL=${GATEWAY_URL:-http://localhost:8000}
BALANCER_URL=${BALANCER_URL:-http://localhost:8001}
SERVER_URL=${SERVER_URL:-http://localhost:8002}
SERVER2_URL=${SERVER2_URL:-http://localhost:8003}
CACHE_URL=${CACHE_URL:-http://localhost:8004}
MONITOR_URL=${MONITOR_URL:-http://localhost:8005}
failures=0

# check NAME EXPECTED_STATUS CURL_ARGS...: one line per check, ✓ or ✗ with what came back.
check() {
  local name=$1 expected=$2
  shift 2
  local status
  status=$(curl -s -o /tmp/quick_test.$$ -w '%{http_code}' --max-time 5 "$@")
  if [[ $status == "$expected" ]]; then
    printf '  \u2713 %-32s %s\n' "$name" "$status"
  else
    printf '  \u2717 %-32s got %s, want %s: %s\n' "$name" "$status" "$expected" \
      "$(head -c 200 /tmp/quick_test.$$)"
    failures=$((failures + 1))
  fi
}

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

echo "health"
for pair in "api_gateway $GATEWAY_URL" "load_balancer $BALANCER_URL" "server $SERVER_URL" \
            "server2 $SERVER2_URL" "cache $CACHE_URL" "monitoring $MONITOR_URL"; do
  set -- $pair
  check "$1 /saude" 200 "$2/saude"
done

echo "gateway"
TOKEN=$(curl -s --max-time 5 -X POST "$GATEWAY_URL/login" -H 'Content-Type: application/json' \
  -d '{"username": "admin", "password": "admin123"}' | json_field '["data"]["access_token"]' 2>/dev/null)
if [[ -n $TOKEN ]]; then printf '  \u2713 %-32s\n' "login admin"; else
  printf '  \u2717 %-32s no token\n' "login admin"; failures=$((failures + 1)); fi
AUTH=(-H "Authorization: Bearer $TOKEN")
check "GET /itens without token" 401 "$GATEWAY_URL/itens"
check "GET /itens" 200 "${AUTH[@]}" "$GATEWAY_URL/itens"
check "POST /itens" 201 "${AUTH[@]}" -H 'Content-Type: application/json' \
  -d '{"nome": "Quick test", "descricao": "smoke", "preco": 1.50}' "$GATEWAY_URL/itens"
check "GET /itens/0 (invalid id)" 422 "${AUTH[@]}" "$GATEWAY_URL/itens/0"

echo "balancer, cache, monitoring"
check "balancer /status" 200 "$BALANCER_URL/status"
check "POST /cache" 201 "${AUTH[@]}" -H 'Content-Type: application/json' \
  -d '{"key": "quick-test", "value": {"ok": true}, "ttl": 60}' "$CACHE_URL/cache"
check "GET /cache/quick-test" 200 "${AUTH[@]}" "$CACHE_URL/cache/quick-test"
check "GET /cache/stats" 200 "${AUTH[@]}" "$CACHE_URL/cache/stats"
check "monitor /health" 200 "$MONITOR_URL/health"
check "monitor /alerts" 200 "$MONITOR_URL/alerts"
check "monitor /dashboard" 200 "$MONITOR_URL/dashboard"

rm -f /tmp/quick_test.$$
if ((failures)); then echo "FAILED: $failures check(s)"; exit 1; fi
echo "all checks passed"
