# Helpers for the service tests: `. "$(dirname "$0")/svc_lib.sh"` (after setting nothing).
# Servers listen on 127.0.0.1 with a free port (port 0 + --port-file) and are stopped by PID.
. "$CANARY_SOURCE_DIR/tests/integration/lib.sh"
: "${CANARY_TESTSERVER:?CANARY_TESTSERVER must point at canary-stt-testserver}"
PY=/usr/bin/python3
SERVERS=()
stop_all() {
  for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SERVERS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap stop_all EXIT

mkwav() { "$PY" "$CANARY_SOURCE_DIR/tests/service/mkwav.py" "$@"; }

# start_server DATA_DIR [settings...]: sets SPID, PORT, URL. BIN=... overrides the binary (the real
# `canary-stt serve`, which start_server then waits for until its model is loaded).
start_server() {
  local dir=$1; shift
  local pf="$TMP/port.$RANDOM$RANDOM"
  "${BIN:-$CANARY_TESTSERVER}" ${BIN:+serve} --port 0 --port-file "$pf" --data-dir "$dir" "$@" >>"$dir.log" 2>&1 &
  SPID=$!
  SERVERS+=("$SPID")
  for _ in $(seq 1 300); do
    [ -s "$pf" ] && break
    kill -0 "$SPID" 2>/dev/null || { echo "server exited; log:" >&2; cat "$dir.log" >&2; return 1; }
    sleep 0.05
  done
  PORT=$(cat "$pf")
  URL="http://127.0.0.1:$PORT"
  # the real server opens its port before the model has loaded (/health 503 meanwhile)
  if [ -n "${BIN:-}" ]; then
    for _ in $(seq 1 1200); do
      [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/health" || true)" = 200 ] && return 0
      kill -0 "$SPID" 2>/dev/null || { echo "server exited; log:" >&2; cat "$dir.log" >&2; return 1; }
      sleep 0.05
    done
    echo "the model did not load in 60 s; log:" >&2; cat "$dir.log" >&2; return 1
  fi
}
stop_server() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# req CURL_ARGS...: body in $TMP/body, headers in $TMP/hdr, status in $CODE.
req() { CODE=$(curl -sS -o "$TMP/body" -D "$TMP/hdr" -w '%{http_code}' "$@" || true); }
# expect_code DESC CODE CURL_ARGS...
expect_code() {
  local desc=$1 want=$2; shift 2
  req "$@"
  if [ "$CODE" = "$want" ]; then ok "$desc"; else bad "$desc (HTTP $CODE, wanted $want)"; head -c 600 "$TMP/body" >&2; echo >&2; fi
}
# expect_eq DESC WANT GOT
expect_eq() {
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: wanted '$2', got '$3'"; fi
}
# jb JQ_FILTER: applies jq to the last body (raw output)
jb() { jq -r "$1" "$TMP/body"; }
# wait_status URL_OF_JOB STATUS [SECONDS] [CURL_ARGS...]: polls GET until the job has STATUS
wait_status() {
  local url=$1 want=$2 secs=${3:-30}; shift 3 || shift $#
  local end=$((SECONDS + secs)) st=""
  while [ $SECONDS -le $end ]; do
    st=$(curl -sS "$@" "$url" | jq -r .status)
    [ "$st" = "$want" ] && return 0
    sleep 0.05
  done
  echo "job at $url is '$st', wanted '$want'" >&2
  return 1
}
