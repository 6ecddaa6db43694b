#!/usr/bin/env bash
# The whole architecture end to end, failover included. Start it first (`make up`).
#
# The failover step stops and restarts the `server` instance with these commands:
#   make up (default)  STOP_SERVER="supervisorctl ... stop server"  START_SERVER="... start server"
#   docker compose     STOP_SERVER="docker compose stop server" START_SERVER="docker compose start server"
# Base URLs: GATEWAY_URL, BALANCER_URL, CACHE_URL, MONITOR_URL (default localhost:8000...8005).
set -euo pipefail
cd "$(dirname "$0")"

GATEWAY_URL=${GATEWAY_URL:-http://localhost:8000}
BALANCER_URL=${BALANCER_URL:-http://localhost:8001}
SERVER_URL=${SERVER_URL:-http://localhost:8002}
SERVER2_URL=${SERVER2_URL:-http://localhost:8003}
CACHE_URL=${CACHE_URL:-http://localhost:8004}
MONITOR_URL=${MONITOR_URL:-http://localhost:8005}
SUPERVISORCTL=".venv/bin/supervisorctl -s unix://${RUN_DIR:-.run}/supervisor.sock"
STOP_SERVER=${STOP_SERVER:-"$SUPERVISORCTL stop server"}
START_SERVER=${START_SERVER:-"$SUPERVISORCTL start server"}

step() { printf '\n== %s\n' "$*"; }
ok() { printf '  \u2713 %s\n' "$*"; }
fail() { printf '  \u2717 %s\n' "$*"; exit 1; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)" <<<"$BODY"; }

# call METHOD URL [JSON]: sets STATUS, BODY and SERVED_BY.
call() {
  local method=$1 url=$2 data=${3:-}
  local args=(-s -X "$method" --max-time 10 -D /tmp/arch_headers.$$ -o /tmp/arch_body.$$
              -w '%{http_code}' -H "Content-Type: application/json")
  [[ -n ${TOKEN:-} ]] && args+=(-H "Authorization: Bearer $TOKEN")
  [[ -n $data ]] && args+=(-d "$data")
  STATUS=$(curl "${args[@]}" "$url" || echo 000)
  BODY=$(cat /tmp/arch_body.$$)
  SERVED_BY=$(awk 'tolower($1)=="x-served-by:" {print $2}' /tmp/arch_headers.$$ | tr -d '\r')
}
expect() { [[ $STATUS == "$1" ]] && ok "$2 ($STATUS)" || fail "$2: got $STATUS, want $1: $BODY"; }
trap 'rm -f /tmp/arch_headers.$$ /tmp/arch_body.$$' EXIT

step "1. every service is healthy"
for url in "$GATEWAY_URL" "$BALANCER_URL" "$SERVER_URL" "$SERVER2_URL" "$CACHE_URL" "$MONITOR_URL"; do
  call GET "$url/saude"; expect 200 "$url/saude"
done

step "2. accounts"
name="arch$RANDOM$RANDOM"
call POST "$GATEWAY_URL/register" "{\"username\": \"$name\", \"password\": \"arch-pass-123\"}"
expect 201 "register $name"
call POST "$GATEWAY_URL/register" "{\"username\": \"$name\", \"password\": \"arch-pass-123\"}"
expect 409 "the same name again is a conflict"
call POST "$GATEWAY_URL/login" "{\"username\": \"$name\", \"password\": \"arch-pass-123\"}"
expect 200 "login $name"; USER_TOKEN=$(field '["data"]["access_token"]')
call POST "$GATEWAY_URL/login" '{"username": "admin", "password": "admin123"}'
expect 200 "login admin"; TOKEN=$(field '["data"]["access_token"]')

step "3. items through gateway -> balancer -> servers"
call POST "$GATEWAY_URL/itens" '{"nome": "Arquitetura", "descricao": "teste", "preco": 10.00}'
expect 201 "create"; id=$(field '["data"]["id"]')
call GET "$GATEWAY_URL/itens/$id"; expect 200 "read item $id"
call PUT "$GATEWAY_URL/itens/$id" '{"nome": "Arquitetura 2", "descricao": "", "preco": 12.50}'
expect 200 "replace"
ADMIN_TOKEN=$TOKEN TOKEN=$USER_TOKEN
call DELETE "$GATEWAY_URL/itens/$id"; expect 403 "another user may not delete it"
TOKEN=$ADMIN_TOKEN
call DELETE "$GATEWAY_URL/itens/$id"; expect 200 "the owner deletes it"
call GET "$GATEWAY_URL/itens/$id"; expect 404 "gone on every server"

step "4. round-robin"
served=()
for _ in 1 2 3 4; do call GET "$GATEWAY_URL/itens"; served+=("$SERVED_BY"); done
[[ ${served[0]} != "${served[1]}" && ${served[1]} != "${served[2]}" ]] \
  && ok "consecutive GETs alternate: ${served[*]}" || fail "no alternation: ${served[*]}"

step "5. failover: stop server, keep serving"
$STOP_SERVER >/dev/null
failed=0; others=0
for i in $(seq 1 20); do
  if ((i % 4 == 0)); then
    call POST "$GATEWAY_URL/itens" "{\"nome\": \"failover $i\", \"preco\": 1}"
    [[ $STATUS == 201 ]] || failed=$((failed + 1))
  else
    call GET "$GATEWAY_URL/itens"; [[ $STATUS == 200 ]] || failed=$((failed + 1))
  fi
  [[ $SERVED_BY == server2 ]] || others=$((others + 1))
done
((failed == 0)) && ok "20 requests with server down, 0 failed" || fail "$failed requests failed"
((others == 0)) && ok "all served by server2" || fail "$others not served by server2"
$START_SERVER >/dev/null
back=""
for _ in $(seq 1 60); do
  call GET "$GATEWAY_URL/itens"
  [[ $SERVED_BY == server ]] && back=yes && break
  sleep 0.5
done
[[ -n $back ]] && ok "server takes traffic again after restart" || fail "server never came back"

step "6. cache and monitoring"
call POST "$CACHE_URL/cache" '{"key": "arch-test", "value": [1, 2, 3], "ttl": 30}'
expect 201 "store a key"
call GET "$CACHE_URL/cache/arch-test"; expect 200 "read it back"
call GET "$CACHE_URL/cache/stats"; expect 200 "stats"
call GET "$BALANCER_URL/status"; expect 200 "balancer statistics"
call GET "$MONITOR_URL/health"; expect 200 "monitor overview"
call GET "$MONITOR_URL/alerts"; expect 200 "monitor alerts"

printf '\narchitecture OK\n'
