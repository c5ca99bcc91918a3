#!/usr/bin/env bash
# The CLI skeleton: help, version, configuration layering, subcommand dispatch.
. "$(dirname "$0")/lib.sh"

expect_rc 0 "--help exits 0" "$CANARY_BIN" --help
expect_grep "--help lists transcribe" "transcribe" "$TMP/out"
expect_grep "--help lists serve" "serve" "$TMP/out"
expect_rc 2 "no arguments is a usage error" "$CANARY_BIN"
expect_rc 2 "unknown command is an error" "$CANARY_BIN" frobnicate
expect_grep "unknown command named" "frobnicate" "$TMP/err"
expect_rc 0 "--version exits 0" "$CANARY_BIN" --version
expect_grep "--version prints the version" "canary-stt [0-9]" "$TMP/out"
expect_grep "--version reports the CUDA backend state" "CUDA backend" "$TMP/out"

cat >"$TMP/c.yaml" <<'YAML'
model: /models/x.nemo
server:
  port: 9001
engine:
  threads: 2
YAML
CANARY_SERVER_PORT=9002 expect_rc 0 "config with file+env+flag" "$CANARY_BIN" config --config "$TMP/c.yaml" --threads 4
expect_grep "file value shown" "/models/x.nemo .*(file)" "$TMP/out"
expect_grep "env beats file" "server.port .*9002 .*(env)" "$TMP/out"
expect_grep "flag beats file" "engine.threads .*4 .*(flag)" "$TMP/out"
expect_grep "default shown" "server.host .*127.0.0.1 .*(default)" "$TMP/out"
CANARY_CONFIG="$TMP/c.yaml" expect_rc 0 "CANARY_CONFIG names the file" "$CANARY_BIN" config --json
expect_grep "json output" '"server.port":{"value":9001,"source":"file"}' "$TMP/out"
expect_rc 0 "config --help" "$CANARY_BIN" config --help
expect_grep "help lists env names" "CANARY_SERVER_PORT" "$TMP/out"
printf 'server:\n  prot: 1\n' >"$TMP/bad.yaml"
expect_rc 2 "bad config key is an error" "$CANARY_BIN" config --config "$TMP/bad.yaml"
expect_grep "error names the key" "server.prot" "$TMP/err"
expect_rc 2 "bad flag value is an error" "$CANARY_BIN" config --port notanumber
expect_grep "error names the setting" "server.port" "$TMP/err"
expect_rc 1 "a misspelt device is refused" "$CANARY_BIN" transcribe --model /nonexistent.nemo --device gpu "$TMP/c.yaml"
expect_grep "the refusal lists the devices" "expected cpu, cuda, cuda:N" "$TMP/err"
# no silent CPU run: an explicit GPU that is not there stops the service with the reason
if [ -f "$CANARY_BINARY_DIR/models/canary-180m-flash-tiny.nemo" ]; then
  expect_rc 1 "the service refuses a GPU that is not there rather than run on the CPU" "$CANARY_BIN" serve \
    --model "$CANARY_BINARY_DIR/models/canary-180m-flash-tiny.nemo" --device cuda:7 --port 0 --data-dir "$TMP/svc"
  expect_grep "the refusal names the device" "cuda:7" "$TMP/err"
fi
finish
