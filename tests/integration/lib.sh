# Helpers for integration test scripts: `. "$(dirname "$0")/lib.sh"`.
set -euo pipefail
: "${CANARY_BIN:?CANARY_BIN must point at the canary-stt binary}"
TMP=$(mktemp -d /tmp/canary-it-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fails=0
passes=0
ok() { passes=$((passes + 1)); echo "ok - $*"; }
bad() { fails=$((fails + 1)); echo "not ok - $*"; }
# expect_rc RC DESC CMD...: runs CMD, captures stdout/stderr into $TMP/out, $TMP/err
expect_rc() {
  local want=$1 desc=$2; shift 2
  set +e; "$@" >"$TMP/out" 2>"$TMP/err"; local rc=$?; set -e
  if [ "$rc" = "$want" ]; then ok "$desc"; else bad "$desc (exit $rc, wanted $want)"; cat "$TMP/err" >&2; fi
}
expect_grep() { # expect_grep DESC PATTERN FILE
  if grep -q -- "$2" "$3"; then ok "$1"; else bad "$1: '$2' not in $3"; head -50 "$3" >&2; fi
}
finish() {
  echo "$passes passed, $fails failed"
  [ "$fails" = 0 ]
}
