#!/usr/bin/env bash
# canary-stt models against a local hub mimic (tests/hub/mimic_hub.py on 127.0.0.1, random port):
# pull + verify, cache hit, resume after a cut connection (within one pull and across two), checksum
# mismatch, 401/404 messages, concurrent pulls, offline mode, no network, --model resolution.
. "$CANARY_SOURCE_DIR/tests/integration/lib.sh"
PY=/usr/bin/python3
MIMIC="$CANARY_SOURCE_DIR/tests/hub/mimic_hub.py"
REPO=nvidia/canary-180m-flash
SRV_PID=""

# The served repository: a 3 MiB stand-in .nemo (the protocol does not look inside) and a README.
mkdir -p "$TMP/repos/nvidia/canary-180m-flash"
head -c 3145728 /dev/urandom > "$TMP/repos/nvidia/canary-180m-flash/canary-180m-flash.nemo"
echo "# readme" > "$TMP/repos/nvidia/canary-180m-flash/README.md"
SRC="$TMP/repos/nvidia/canary-180m-flash/canary-180m-flash.nemo"
SRC_SHA=$(sha256sum "$SRC" | cut -d' ' -f1)

start_server() { # start_server [mimic options...]
  stop_server
  rm -f "$TMP/port" "$TMP/log"; touch "$TMP/log"
  $PY "$MIMIC" --repos "$TMP/repos" --port-file "$TMP/port" --log "$TMP/log" "$@" &
  SRV_PID=$!
  for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.05; done
  export HF_ENDPOINT="http://127.0.0.1:$(cat "$TMP/port")"
}
stop_server() {
  if [ -n "$SRV_PID" ]; then kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=""; fi
}
trap 'stop_server; rm -rf "$TMP"' EXIT
cdn_gets() { grep -c "^GET /cdn/" "$TMP/log" || true; }
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN HF_HUB_OFFLINE http_proxy https_proxy HTTPS_PROXY ALL_PROXY all_proxy no_proxy NO_PROXY
export HF_HOME="$TMP/hf-home" # no stray token file
M() { "$CANARY_BIN" models "$@" --quiet; }

# ---- pull, verify, cache hit ----
start_server
C1="$TMP/cache1"
expect_rc 0 "pull" M pull $REPO --cache-dir "$C1"
P=$(cat "$TMP/out")
if cmp -s "$P" "$SRC"; then ok "pulled file is identical"; else bad "pulled file differs ($P)"; fi
case "$P" in "$C1/models--nvidia--canary-180m-flash/snapshots/"*/canary-180m-flash.nemo) ok "snapshot path layout";;
  *) bad "unexpected path $P";; esac
[ -f "$C1/models--nvidia--canary-180m-flash/blobs/$SRC_SHA" ] && ok "blob named by its sha256" || bad "blob name"
[ "$(cdn_gets)" = 1 ] && ok "one body download" || bad "CDN GETs: $(cdn_gets)"
grep -q "^HEAD /nvidia/canary-180m-flash/resolve/0123456789abcdef0123456789abcdef01234567/canary-180m-flash.nemo" "$TMP/log" \
  && ok "HEAD on the resolve URL at the listed commit" || bad "no HEAD request"
expect_rc 0 "second pull" M pull $REPO --cache-dir "$C1"
[ "$(cdn_gets)" = 1 ] && ok "second pull is a cache hit" || bad "second pull downloaded again"
expect_rc 0 "models list" "$CANARY_BIN" models list --cache-dir "$C1"
expect_grep "list shows the model and size" "nvidia/canary-180m-flash  *3.0 MiB  main@0123456789ab  canary-180m-flash.nemo" "$TMP/out"
expect_rc 0 "models list --json" "$CANARY_BIN" models list --json --cache-dir "$C1"
if $PY -c "
import json,sys; d=json.load(open('$TMP/out')); m=d['models'][0]
assert d['cache_dir']=='$C1' and m['name']=='$REPO' and m['size_bytes']==3145728 and m['complete'] and m['path']=='$P', d
"; then ok "list --json"; else bad "list --json"; cat "$TMP/out" >&2; fi
expect_rc 0 "models path resolves the hub name" M path $REPO --cache-dir "$C1"
[ "$(cat "$TMP/out")" = "$P" ] && ok "path = pulled snapshot" || bad "path differs"

expect_rc 0 "pull by commit" M pull $REPO@0123456789abcdef0123456789abcdef01234567 --cache-dir "$TMP/cache-commit"
expect_rc 0 "list after a pull by commit" "$CANARY_BIN" models list --cache-dir "$TMP/cache-commit"
expect_grep "commit-pulled model listed as complete" "nvidia/canary-180m-flash  *3.0 MiB  0123456789abcdef0123456789abcdef01234567@0123456789ab" "$TMP/out"

# ---- offline ----
: > "$TMP/log"
HF_HUB_OFFLINE=1 expect_rc 0 "offline pull uses the cache" M pull $REPO --cache-dir "$C1"
[ "$(cat "$TMP/out")" = "$P" ] && [ ! -s "$TMP/log" ] && ok "offline: no request, cached path" || bad "offline touched the network"
HF_HUB_OFFLINE=1 expect_rc 1 "offline without a cached copy" M pull $REPO --cache-dir "$TMP/empty"
expect_grep "offline message" "HF_HUB_OFFLINE is set and nvidia/canary-180m-flash (revision main) is not in the model cache" "$TMP/err"
expect_rc 1 "--offline flag" M pull nvidia/canary-1b-flash --offline --cache-dir "$C1"

# ---- rm ----
cp -r "$C1" "$TMP/cache-rm"
expect_rc 0 "models rm" "$CANARY_BIN" models rm $REPO --cache-dir "$TMP/cache-rm"
[ ! -e "$TMP/cache-rm/models--nvidia--canary-180m-flash" ] && ok "rm removed the folder" || bad "rm left files"
expect_rc 1 "rm of an absent model" "$CANARY_BIN" models rm $REPO --cache-dir "$TMP/cache-rm"
expect_grep "rm message" "is not in the model cache" "$TMP/err"

# ---- resume within one pull: the server cuts the first body transfer at 1,000,000 bytes ----
start_server --cut-once 1000000
expect_rc 0 "pull survives a cut connection" M pull $REPO --cache-dir "$TMP/cache2"
cmp -s "$(cat "$TMP/out")" "$SRC" && ok "resumed file is identical" || bad "resumed file differs"
grep -q "^GET /cdn/$SRC_SHA range=bytes=1000000-" "$TMP/log" && ok "resumed with Range: bytes=1000000-" \
  || { bad "no Range request"; cat "$TMP/log" >&2; }
expect_grep "resume is logged" "interrupted at 1000000 of 3145728 bytes" "$TMP/err"

# ---- resume across two runs ----
start_server --cut-once 1000000
expect_rc 1 "pull with --retries 0 stops at the cut" M pull $REPO --cache-dir "$TMP/cache3" --retries 0
expect_grep "says how to resume" "run the command again to resume" "$TMP/err"
PART="$TMP/cache3/models--nvidia--canary-180m-flash/blobs/$SRC_SHA.incomplete"
[ "$(stat -c %s "$PART" 2>/dev/null)" = 1000000 ] && ok "partial file kept" || bad "partial file missing"
expect_rc 0 "models list shows the partial download" "$CANARY_BIN" models list --cache-dir "$TMP/cache3"
expect_grep "partial in list" "partial download" "$TMP/out"
expect_rc 0 "second run resumes" M pull $REPO --cache-dir "$TMP/cache3"
cmp -s "$(cat "$TMP/out")" "$SRC" && ok "file complete after the second run" || bad "second run result differs"
[ "$(grep -c "^GET /cdn/.*range=bytes=1000000-" "$TMP/log")" = 1 ] && ok "second run asked for the rest only" || { bad "no resume"; cat "$TMP/log" >&2; }
[ ! -e "$PART" ] && ok "no .incomplete left" || bad ".incomplete left"

# ---- a 503 from the CDN is retried ----
start_server --fail-once 503
expect_rc 0 "pull survives a 503" M pull $REPO --cache-dir "$TMP/cache-503"
cmp -s "$(cat "$TMP/out")" "$SRC" && ok "file after a 503 is identical" || bad "503 retry result differs"
[ "$(cdn_gets)" = 2 ] && ok "the CDN was asked twice" || bad "CDN GETs after 503: $(cdn_gets)"

# ---- progress bar on a terminal (script(1) provides one) ----
start_server
script -qec "$CANARY_BIN models pull $REPO --cache-dir $TMP/cache-tty" /dev/null > "$TMP/tty.out" 2>&1 || true
grep -q "canary-180m-flash.nemo \[##############################\] 100.0% 3.0/3.0 MiB" "$TMP/tty.out" \
  && ok "progress bar reaches 100 % on a terminal" || { bad "no progress bar"; cat -v "$TMP/tty.out" | tail -5 >&2; }

# ---- checksum mismatch ----
start_server --bad-sha
expect_rc 1 "wrong checksum is rejected" M pull $REPO --cache-dir "$TMP/cache4"
expect_grep "mismatch message" "checksum mismatch for nvidia/canary-180m-flash/canary-180m-flash.nemo" "$TMP/err"
expect_grep "names the partial file removal" "the partial file was removed" "$TMP/err"
if [ -z "$(find "$TMP/cache4" -type f -path '*/blobs/*')" ] && [ ! -e "$TMP/cache4/models--nvidia--canary-180m-flash/snapshots" ]; then
  ok "nothing left in blobs/ or snapshots/"; else bad "files left after a mismatch"; find "$TMP/cache4" >&2; fi

# ---- 401 / 404 ----
start_server --token s3cret
expect_rc 1 "private repo without a token" M pull $REPO --cache-dir "$TMP/cache5"
expect_grep "401 message names HF_TOKEN" "answered 401 Unauthorized for nvidia/canary-180m-flash.*set HF_TOKEN" "$TMP/err"
HF_TOKEN=wrong expect_rc 1 "wrong token" M pull $REPO --cache-dir "$TMP/cache5"
expect_grep "rejected token message" "refused the token for nvidia/canary-180m-flash" "$TMP/err"
HF_TOKEN=s3cret expect_rc 0 "right token" M pull $REPO --cache-dir "$TMP/cache5"
grep -q "^GET /cdn/.* auth=no" "$TMP/log" && ok "token not sent to the CDN host after the redirect" || bad "token leaked"
mkdir -p "$HF_HOME"; echo s3cret > "$HF_HOME/token"
expect_rc 0 "token from \$HF_HOME/token (huggingface-cli login)" M pull $REPO --cache-dir "$TMP/cache5b"
rm "$HF_HOME/token"
HF_TOKEN=s3cret expect_rc 1 "unknown repo with a token" M pull nvidia/no-such-model --cache-dir "$TMP/cache5"
expect_grep "404 message" "repository nvidia/no-such-model was not found at $HF_ENDPOINT" "$TMP/err"
HF_TOKEN=s3cret expect_rc 1 "unknown revision" M pull $REPO --revision v9 --cache-dir "$TMP/cache5"
expect_grep "revision message" "has no revision 'v9'" "$TMP/err"
expect_rc 2 "not a repo name" M pull "../../etc" --cache-dir "$TMP/cache5"

# ---- a proxy: the hub name does not resolve, only the proxy (the mimic) can reach it ----
start_server
PROXY="http://127.0.0.1:$(cat "$TMP/port")"
HF_ENDPOINT=http://hub.invalid http_proxy="$PROXY" expect_rc 0 "pull through http_proxy" M pull $REPO --cache-dir "$TMP/cache-proxy"
cmp -s "$(cat "$TMP/out")" "$SRC" && ok "file via the proxy is identical" || bad "proxy download differs"
grep -q "^GET /api/models/nvidia/canary-180m-flash/revision/main .*via-proxy" "$TMP/log" && ok "requests went through the proxy" \
  || { bad "proxy not used"; cat "$TMP/log" >&2; }

# ---- concurrent pulls of the same model ----
start_server --delay-ms 5
C6="$TMP/cache6"
for i in 1 2 3; do ("$CANARY_BIN" models pull $REPO --quiet --cache-dir "$C6" >"$TMP/c$i.out" 2>"$TMP/c$i.err"; echo $? >"$TMP/c$i.rc") & done
wait_ok=1
for i in 1 2 3; do
  while [ ! -s "$TMP/c$i.rc" ]; do sleep 0.1; done
  [ "$(cat "$TMP/c$i.rc")" = 0 ] || { wait_ok=0; cat "$TMP/c$i.err" >&2; }
  cmp -s "$(cat "$TMP/c$i.out")" "$SRC" || wait_ok=0
done
[ $wait_ok = 1 ] && ok "three concurrent pulls all return the intact file" || bad "concurrent pulls"
[ "$(cdn_gets)" = 1 ] && ok "downloaded once; the others waited on the lock" || bad "CDN GETs: $(cdn_gets)"
[ -z "$(find "$C6" -name '*.incomplete' -o -name '*.tmp.*')" ] && ok "no temporary files left" || bad "temporaries left"

# ---- no network: the cached copy is used; without one, the paragraph ----
stop_server
export HF_ENDPOINT="http://127.0.0.1:9" # discard port: connection refused
expect_rc 0 "network down, cached copy used" M pull $REPO --cache-dir "$C1"
expect_grep "warns about the network" "using the cached" "$TMP/err"
expect_rc 1 "network down, nothing cached" M pull $REPO --cache-dir "$TMP/cache7"
expect_grep "paragraph: what was tried" "cannot get the model nvidia/canary-180m-flash: it is not in the model cache" "$TMP/err"
expect_grep "paragraph: place a .nemo by hand" "start with --model /path/to/canary-180m-flash.nemo" "$TMP/err"
expect_grep "paragraph: smoke run" "random-weight test model: /usr/bin/python3 tools/make-test-model --layout canary-180m-flash --out /tmp/m, then --model /tmp/m/canary-180m-flash-tiny.nemo." "$TMP/err"

# ---- --model resolution of local paths ----
cp "$SRC" "$TMP/local.nemo"
expect_rc 0 "a local file" M path "$TMP/local.nemo"
[ "$(cat "$TMP/out")" = "$TMP/local.nemo" ] && ok "local file path unchanged" || bad "local path"
mkdir -p "$TMP/unpacked"
cd "$TMP"; expect_rc 0 "a relative directory" "$CANARY_BIN" models path ./unpacked; cd - >/dev/null
[ "$(cat "$TMP/out")" = "$TMP/unpacked" ] && ok "directory made absolute" || bad "directory path"
printf 'version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize 3145728\n' "$SRC_SHA" > "$TMP/pointer.nemo"
expect_rc 1 "an LFS pointer is refused" M path "$TMP/pointer.nemo"
expect_grep "LFS advice" "is a Git LFS pointer.*git lfs pull" "$TMP/err"
expect_rc 1 "missing .nemo path" M path "$TMP/nope.nemo"
expect_grep "missing file message" "no such file or directory" "$TMP/err"
finish
