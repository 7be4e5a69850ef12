#!/usr/bin/env bash
# Property-based API testing: runs schemathesis against the real server, generating requests
# from docs/openapi.json (as the server serves it) and checking every answer: no 5xx, and the
# status code, content type and body schema are the documented ones.
#
# It installs schemathesis (pinned) into a virtualenv under target/, builds the release binary,
# starts `chinwag serve` on 127.0.0.1 with a free port and a temporary data directory, seeds a
# few chats, messages and an order chat, then runs schemathesis with a client token for the
# client routes and the service key for the host routes (SSE streams are read up to their first
# event, whose JSON is checked too; long-polls are asked to answer at once). It stops the server
# it started, and exits non-zero on any failure, a server panic, or when fewer than
# SCHEMATHESIS_MIN_REQUESTS requests were made. All traffic goes to 127.0.0.1.
#
# Settings (environment): SCHEMATHESIS_MAX_EXAMPLES (per operation, default 40),
# SCHEMATHESIS_MIN_REQUESTS (default 1000), SCHEMATHESIS_SEED (default 1),
# SCHEMATHESIS_TIMEOUT (seconds for the whole run, default 600), CHINWAG_BIN (a built binary
# instead of `cargo build --release`). Extra arguments go to `schemathesis run`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-40}
MIN_REQUESTS=${SCHEMATHESIS_MIN_REQUESTS:-1000}
SEED=${SCHEMATHESIS_SEED:-1}
RUN_TIMEOUT=${SCHEMATHESIS_TIMEOUT:-600}

say() { printf '==> %s\n' "$*" >&2; }

# 1. schemathesis, pinned, in its own virtualenv.
VENV=target/schemathesis-venv
if [[ "$("$VENV/bin/schemathesis" --version 2>/dev/null)" != *"$SCHEMATHESIS_VERSION"* ]]; then
    say "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# 2. The server binary.
if [[ -z "${CHINWAG_BIN:-}" ]]; then
    say "building the release binary"
    cargo build --release --bin chinwag
    CHINWAG_BIN=target/release/chinwag
fi

# 3. The server on a free loopback port and a temporary data directory.
WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
SERVICE_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
DATA="$WORK/data"

say "starting chinwag on $BASE"
# Rate limits off: schemathesis sends thousands of requests with one token as fast as it can,
# and each 429 would be a request whose answer says nothing of the schema.
"$CHINWAG_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" --secret "$SECRET" \
    --service-key "$SERVICE_KEY" --sync normal --rate-per-user 0 --rate-per-ip 0 \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
    curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
done
curl -fsS "$BASE/healthz" >/dev/null
# The binary under test serves the browser's files it embeds (a build that lost them answers 404).
# (Read whole, then searched: `curl | grep -q` fails under pipefail when grep stops at its match.)
curl -fsS "$BASE/" >"$WORK/page.html"
grep -q '<html' "$WORK/page.html" || { say "GET / is not the demo app's page"; exit 1; }
curl -fsS "$BASE/v1/client.js" >"$WORK/client.js"
grep -q 'export class Chinwag' "$WORK/client.js" || { say "GET /v1/client.js is not the client"; exit 1; }

CLIENT_TOKEN=$("$CHINWAG_BIN" token --data-dir "$DATA" --secret "$SECRET" --user alice --ttl 7200)

# 4. Something to find: small ids that exist, so generated requests reach past 404.
post() { curl -fsS -o /dev/null -X POST "$BASE$1" -H "Authorization: Bearer $2" -d "$3"; }
post /v1/createChat "$CLIENT_TOKEN" '{"data": {"userIds": ["bob"]}}'
post /v1/createChat "$CLIENT_TOKEN" '{"data": {"userIds": ["bob", "carol"], "name": "Team"}}'
post /v1/message "$CLIENT_TOKEN" '{"data": {"messages": [
    {"clientMessageId": "seed-1", "chatId": 1, "text": "hello"},
    {"clientMessageId": "seed-2", "chatId": 2, "text": "hello team"}]}}'
post /v1/server/chats/new "$SERVICE_KEY" '{"order_id": 501}'
post /v1/server/chats/user/subscribe "$SERVICE_KEY" '{"user_id": "alice", "user_type": "client", "chat_id": 3}'
post /v1/server/chats/message "$SERVICE_KEY" '{"chat_id": 3, "message": "welcome"}'
FILE_ID=$(curl -fsS -X POST "$BASE/v1/files?name=seed.txt" -H "Authorization: Bearer $CLIENT_TOKEN" \
    --data-binary 'seed file' | python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["id"])')

# 5. Credentials per security scheme, and a hook that keeps long-polls short, sends every other
# download to the seeded file (so ranges and validators meet a real file) and counts requests.
cat >"$WORK/schemathesis.toml" <<'EOF'
[cache]
enabled = false

# A stream never ends by itself: read its first event (the snapshot, or a replayed or reset
# event), and give up waiting after 2 s when there is none (`?snapshot=0` and nothing new).
[[operations]]
include-path = "/v1/events"
max-stream-events = 1
request-timeout = 2

[auth.openapi.clientBearer]
bearer = "${CHINWAG_ST_CLIENT_TOKEN}"

[auth.openapi.clientQueryToken]
api_key = "${CHINWAG_ST_CLIENT_TOKEN}"

[auth.openapi.serviceKey]
bearer = "${CHINWAG_ST_SERVICE_KEY}"
EOF
cat >"$WORK/hooks.py" <<'EOF'
import ast
import os
import threading

import schemathesis

_lock = threading.Lock()
_count = [0]

# CPython 3.11 before 3.11.8 keeps ast.parse's recursion count in state that all threads share,
# so a parse interleaved with another can fail with "SystemError: AST constructor recursion depth
# mismatch" (gh-106905). Hypothesis parses source files to describe lambdas, from both workers:
# one parse at a time, and a parse that still meets the error is tried again.
_parse_lock = threading.Lock()
_parse = ast.parse


def _parse_alone(*args, **kwargs):
    with _parse_lock:
        try:
            return _parse(*args, **kwargs)
        except SystemError:
            return _parse(*args, **kwargs)


ast.parse = _parse_alone


@schemathesis.hook
def before_call(context, case, kwargs):
    # A poll holds until an event arrives or `timeout` ends (25 s by default): ask for an
    # immediate answer, keeping values the server must refuse (negative, not a number).
    if case.operation.path == "/v1/poll":
        query = dict(case.query or {})
        timeout = query.get("timeout")
        if timeout is None or (isinstance(timeout, int) and not isinstance(timeout, bool)
                               and timeout >= 0) or (isinstance(timeout, str)
                                                     and timeout.strip().isdigit()):
            query["timeout"] = 0
        case.query = query
    with _lock:
        _count[0] += 1
        n = _count[0]
        with open(os.environ["CHINWAG_ST_COUNT"], "w") as f:
            f.write(str(n))
    if case.operation.path.startswith("/v1/files/{fileId}") and n % 2 == 0:
        case.path_parameters = dict(case.path_parameters or {}, fileId=os.environ["CHINWAG_ST_FILE"])
EOF

export CHINWAG_ST_CLIENT_TOKEN="$CLIENT_TOKEN" CHINWAG_ST_SERVICE_KEY="$SERVICE_KEY"
export CHINWAG_ST_COUNT="$WORK/count" CHINWAG_ST_FILE="$FILE_ID" SCHEMATHESIS_HOOKS="$WORK/hooks.py"
echo 0 >"$CHINWAG_ST_COUNT"

# 6. The run.
say "running schemathesis (at most $MAX_EXAMPLES examples per operation, seed $SEED)"
status=0
timeout --kill-after=10 "$RUN_TIMEOUT" "$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" \
    run "$BASE/v1/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" \
    --workers 2 \
    --request-timeout 10 \
    --generation-database none \
    --no-color \
    "$@" || status=$?

requests=$(cat "$CHINWAG_ST_COUNT")
say "$requests requests sent"
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    say "the server died:"; tail -50 "$WORK/server.log" >&2; exit 1
fi
if grep -q "panicked" "$WORK/server.log"; then
    say "the server panicked:"; grep -A5 "panicked" "$WORK/server.log" >&2; exit 1
fi
if [[ $status -ne 0 ]]; then
    say "schemathesis failed (exit $status)"; exit "$status"
fi
if (( requests < MIN_REQUESTS )); then
    say "only $requests requests, fewer than $MIN_REQUESTS"; exit 1
fi
say "ok: $requests requests, no failure"
