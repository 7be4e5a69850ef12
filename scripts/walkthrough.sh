#!/usr/bin/env bash
# Runs the README's walkthrough verbatim and checks what each step promises.
#
# Every ```sh block of README.md is a step, named by the `<!-- step: NAME -->` line before it; a
# block without one fails the run, so no command in the README goes untested. The steps run in
# order, exactly as written, in a copy of this repository in a temporary directory (so the
# server starts on a fresh ./chinwag-data, as on a fresh clone), sharing this checkout's target
# directory. Commands a reader would leave running in another terminal (the server, streams, a
# held poll) run in the background; after each step the script checks its promise: the chat id,
# the event on the stream, the resumed stream without duplicates, the held poll waking, the
# thumbnail, the host flow, the metrics, the backup served by a second server.
#
#   scripts/walkthrough.sh              the whole walkthrough (needs ports 8080 and 8081 free)
#   scripts/walkthrough.sh --step NAME  only that block, verbatim, in this checkout (CI runs
#                                       `--step tests`: the README's test command)
#   scripts/walkthrough.sh --list       the steps' names
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The README's steps as NAME<TAB>base64(block) lines; fails on a block without a step name.
steps() {
    python3 - "$repo/README.md" <<'PY'
import base64, re, sys
lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
name, i, seen = None, 0, set()
while i < len(lines):
    line = lines[i]
    m = re.fullmatch(r"<!-- step: ([a-z0-9-]+) -->", line.strip())
    if m:
        name = m.group(1)
    elif line.startswith("```sh"):
        if name is None:
            sys.exit(f"README.md line {i + 1}: a sh block without a <!-- step: NAME --> line")
        if name in seen:
            sys.exit(f"README.md line {i + 1}: step {name!r} is named twice")
        seen.add(name)
        j = i + 1
        while not lines[j].startswith("```"):
            j += 1
        block = "\n".join(lines[i + 1:j]) + "\n"
        print(name + "\t" + base64.b64encode(block.encode()).decode())
        name, i = None, j
    elif line.strip():
        name = None
    i += 1
PY
}

block() {
    local b64
    b64=$(steps | awk -F'\t' -v n="$1" '$1 == n {print $2}')
    [[ -n $b64 ]] || { echo "walkthrough: README.md has no step '$1'" >&2; exit 1; }
    printf '%s' "$b64" | base64 -d
}

case "${1:-}" in
--list)
    steps | cut -f1
    exit 0
    ;;
--step)
    cd "$repo"
    code=$(block "$2")
    echo "+ $code"
    eval "$code"
    exit
    ;;
"") ;;
*)
    echo "usage: scripts/walkthrough.sh [--list | --step NAME]" >&2
    exit 2
    ;;
esac

# The steps this script knows how to check, in README order. `tests` is the test suite, which CI
# runs on its own (`--step tests`).
expected="serve tests tokens create-chat bob-stream send send-again resume poll wake read picture host-order host-close metrics openapi backup restore demo"
actual=$(steps | cut -f1 | tr '\n' ' ' | sed 's/ $//')
if [[ $actual != "$expected" ]]; then
    echo "walkthrough: the README's steps changed; teach this script to check them" >&2
    echo "  README: $actual" >&2
    echo "  script: $expected" >&2
    exit 1
fi

for port in 8080 8081; do
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
        echo "walkthrough: something already listens on port $port" >&2
        exit 1
    fi
done

work=$(mktemp -d)
logs="$work/logs"
mkdir -p "$logs" "$work/tree"
# The working tree as a clone would have it (tracked and new files, nothing ignored).
python3 - "$repo" "$work/tree" <<'PY'
import os, shutil, subprocess, sys
repo, dest = sys.argv[1], sys.argv[2]
names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                       cwd=repo, check=True, capture_output=True).stdout.decode().split("\0")
for name in filter(None, names):
    src = os.path.join(repo, name)
    if os.path.isfile(src):
        os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, name))
PY
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
cd "$work/tree"

declare -A bg=()
cleanup() {
    for pid in "${bg[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "walkthrough: FAILED at step '$step': $*" >&2
    for f in "$logs"/*; do
        echo "---- ${f##*/}" >&2
        tail -n 30 "$f" >&2
    done
    exit 1
}

# Runs step $1 in this shell (its variables stay set), output in $logs/$1.
run() {
    step=$1
    echo "==> $step"
    local code
    code=$(block "$step")
    # As a reader's shell runs it: no errexit or pipefail (`curl … | head` is fine there), and
    # what it assigns is exported for the background steps.
    local status=0
    set -a +e +o pipefail
    eval "$code" >"$logs/$step" 2>&1 || status=$?
    set +a -e -o pipefail
    ((status == 0)) || fail "exit status $status"
    # A reader's pace: what a step sets off in the background (delivered receipts are written
    # within 100 ms) is done before the next step, so the README's ids are the ones they get.
    sleep 0.3
}

# Runs step $1 in the background, as in another terminal, output in $logs/$1 (what it says on
# stderr, such as curl's progress meter, in $logs/$1.err).
start() {
    step=$1
    echo "==> $step (in the background)"
    BLOCK=$(block "$step") setsid bash -c 'eval "$BLOCK"' >"$logs/$step" 2>"$logs/$step.err" &
    bg[$step]=$!
}

# Ctrl-C in that terminal: ends the step's whole process group (with SIGTERM: background jobs of
# a script ignore SIGINT).
stop() {
    local pid=${bg[$1]}
    kill -TERM -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "bg[$1]"
}

# Waits up to $3 seconds (default 10) for the output of step $1 to contain $2.
wait_for() {
    local deadline=$((SECONDS + ${3:-10}))
    until grep -qsF -- "$2" "$logs/$1"; do
        ((SECONDS < deadline)) || fail "no '$2' in the output of '$1'"
        sleep 0.1
    done
}

# Checks a Python expression over the JSON documents a step printed (`docs`, a list).
check() {
    python3 - "$logs/$1" "$2" <<'PY' || fail "check failed: $2"
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
docs, i, dec = [], 0, json.JSONDecoder()
while i < len(text):
    if text[i].isspace():
        i += 1
        continue
    doc, i = dec.raw_decode(text, i)
    docs.append(doc)
ok = eval(sys.argv[2], {"docs": docs})
if not ok:
    print("documents:", json.dumps(docs)[:2000], file=sys.stderr)
    sys.exit(1)
PY
}

# The last `id:` an SSE output showed.
last_id() { grep -o '^id: [0-9]*' "$logs/$1" | tail -n 1 | cut -d' ' -f2 || true; }

start serve
wait_for serve "chinwag listening on http://127.0.0.1:8080" 1800
curl -sf localhost:8080/healthz >/dev/null || fail "GET /healthz did not answer 200"

run tokens
[[ $ALICE == *.*.* && $BOB == *.*.* ]] || fail "the tokens are not JWTs: '$ALICE' '$BOB'"

run create-chat
check create-chat 'docs[0]["data"]["chat"]["id"] == 1'

start bob-stream
wait_for bob-stream "event: chats"

run send
check send 'docs[0]["data"]["messages"][0]["text"] == "Hi Bob!"'
wait_for bob-stream "Hi Bob!"
# The delivered receipt of m1 is an event too (Alice's): it is written within 100 ms, before a
# reader gets to the next step, and the README's ids count it. Wait for it, whatever the load.
deadline=$((SECONDS + 10))
until curl -s -X POST localhost:8080/v1/history -H "Authorization: Bearer $ALICE" \
    -d '{"data": {"chatId": 1}}' | grep -q '"status":"delivered"'; do
    ((SECONDS < deadline)) || fail "m1 was never marked delivered"
    sleep 0.1
done

stop bob-stream
seen=$(last_id bob-stream)
run send-again
check send-again 'docs[0]["data"]["messages"][0]["clientMessageId"] == "m2"'

said=$(block resume | grep -o 'Last-Event-ID: [0-9]*' | cut -d' ' -f2)
[[ $said == "$seen" ]] || fail "the README resumes from $said; Bob's stream last showed id $seen"
start resume
wait_for resume "Are you there?"
sleep 0.5
! grep -qF "Hi Bob!" "$logs/resume" || fail "the resumed stream replayed a message Bob had seen"
stop resume

start poll
wait_for poll '"next"'
check poll 'len(docs) == 1 and [e["data"]["text"] for e in docs[0]["events"] if e["type"] == "message"] == ["Hi Bob!", "Are you there?"]'
next=$(python3 -c 'import json,sys; print(json.JSONDecoder().raw_decode(open(sys.argv[1]).read())[0]["next"])' "$logs/poll")
since=$(block poll | sed -n 's/.*since=\([0-9]*\)&timeout.*/\1/p')
[[ $since == "$next" ]] || fail "the README's second poll asks since=$since; the first answered next=$next"
sleep 1
check poll 'len(docs) == 1'
run wake
wait_for poll "Long-poll works too" 5
check poll 'len(docs) == 2 and docs[1]["next"] > docs[0]["next"]'

run read
check read '[m["text"] for m in docs[-1]["data"]["messages"]] == ["Hi Bob!", "Are you there?", "Long-poll works too"]'
# The README marks read up to the newest message by its id, as it is on a fresh server.
check read 'docs[0]["type"] == "messageStatus" and docs[0]["data"]["messageId"] == docs[-1]["data"]["messages"][-1]["id"]'

run picture
[[ $FILE =~ ^[0-9a-f]{32}$ ]] || fail "the upload gave no file id: '$FILE'"
python3 - thumb.jpg <<'PY' || fail "thumb.jpg is not a JPEG of at most 320 px"
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:2] == b"\xff\xd8", "not a JPEG"
i = 2
while i < len(data):
    marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
    if marker in (0xC0, 0xC1, 0xC2):
        h, w = struct.unpack(">HH", data[i + 5:i + 9])
        assert max(w, h) == 320 and min(w, h) > 0, (w, h)
        break
    i += 2 + length
else:
    raise AssertionError("no frame header")
PY

run host-order
check host-order 'docs[0]["chat"]["id"] == 2 and "token" in docs[3] and docs[4]["message"]["sender"] == "system"'

run host-close
check host-close 'any(m["text"] == "Your consultation has started" and m["sender"] == "system" for m in docs[-1]["messages"])'

run metrics
wait_for metrics 'route="/v1/message",status="200"} 4' 1

run openapi
grep -q '"openapi"' "$logs/openapi" || fail "no OpenAPI document"

run backup
[[ -f chinwag-backup/chinwag.db && -f chinwag-backup/files/$FILE ]] || fail "the backup lacks the database or the photo"

start restore
wait_for restore "chinwag listening on http://127.0.0.1:8081" 60
# The restored server has the history, the file, and resumes Bob's stream where it was.
curl -s -X POST localhost:8081/v1/history -H "Authorization: Bearer $BOB" -d '{"data": {"chatId": 1}}' >"$logs/restored-history"
check restored-history 'len(docs[0]["data"]["messages"]) == 4'
curl -s -o "$work/photo.jpg" "localhost:8081/v1/files/$FILE?token=$BOB"
cmp -s "$work/photo.jpg" docs/photo.jpg || fail "the restored server does not serve the photo"
curl -s -N --max-time 3 -H "Last-Event-ID: $seen" "localhost:8081/v1/events?token=$BOB" >"$logs/restored-stream" || true
grep -qF "Are you there?" "$logs/restored-stream" || fail "the restored stream does not resume"
! grep -qF "Hi Bob!" "$logs/restored-stream" || fail "the restored stream replayed a message Bob had seen"

# The reader stops the first server and starts it again with development sign-in: the demo app
# and the client are served, anyone signs in by name, and the chat from the curl walkthrough is
# there.
step=demo
kill -TERM -- "-${bg[serve]}"
wait_for serve.err "stopped" 15
wait "${bg[serve]}" 2>/dev/null || true
unset "bg[serve]"
start demo
wait_for demo "chinwag listening on http://127.0.0.1:8080" 60
# Each body is read whole before it is searched: `curl | grep -q` fails under pipefail whenever grep
# stops reading at its match while curl still writes the rest (SIGPIPE).
curl -sf localhost:8080/ >"$logs/demo-page" || fail "GET / did not answer 200"
grep -q '<html' "$logs/demo-page" || fail "GET / is not the demo app's page"
curl -sf localhost:8080/v1/client.js >"$logs/demo-client" || fail "GET /v1/client.js did not answer 200"
grep -q 'export class Chinwag' "$logs/demo-client" || fail "GET /v1/client.js is not the client"
curl -sf localhost:8080/v1/dev >"$logs/dev"
check dev 'docs[0]["data"]["dev"] is True'
curl -s -X POST localhost:8080/v1/dev/token -d '{"data": {"userId": "bob"}}' >"$logs/dev-token"
check dev-token 'docs[0]["data"]["userId"] == "bob"'
DEV_BOB=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["data"]["token"])' "$logs/dev-token")
curl -s -X POST localhost:8080/v1/chats -H "Authorization: Bearer $DEV_BOB" -d '{}' >"$logs/dev-chats"
check dev-chats 'any(c["id"] == 1 for c in docs[0]["data"]["chats"])'

step=shutdown
for name in restore demo; do
    kill -TERM -- "-${bg[$name]}"
    wait_for "$name.err" "stopped" 15
    wait "${bg[$name]}" 2>/dev/null || true
    unset "bg[$name]"
done
echo "walkthrough: every step did what the README says"
