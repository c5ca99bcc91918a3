#!/usr/bin/env bash
# The service on several (simulated) devices: batches hold chunks of several jobs, a short job's
# chunk rides in the next batch beside a long job's, a faster device takes more batches, a
# device that fails is retired and its work finishes on the others, batches are admitted by
# memory, and /metrics, GET / and the job records show the devices. Assertions allow for timing
# (a loaded machine may form smaller batches) but not for wrong results. The devices are the test
# transcriber's (CANARY_FAKE_DEVICES, see fake_transcriber.c); CANARY_FAKE_BATCH_LOG records
# every batch as "<device> <worker> <n> <job>:<chunk>...".
. "$(dirname "$0")/svc_lib.sh"
LOG="$TMP/batches.log"
export CANARY_FAKE_BATCH_LOG="$LOG"
metric() { grep -F "$1 " "$TMP/body" | grep -v '^#' | awk '{print $2}'; } # after req $URL/metrics
for i in 1 2 3 4 5 6 7 8; do mkwav "$TMP/j$i.wav" 3; done
mkwav "$TMP/six.wav" 6
mkwav "$TMP/long.wav" 40
mkwav "$TMP/short.wav" 1
# submit FILES...: POSTs each as a job, ids in $IDS
submit() {
  IDS=()
  for f in "$@"; do req -F file=@"$f" "$URL/v1/jobs"; IDS+=("$(jb .id)"); done
}
# all_completed TEXT: every job in $IDS completes with that transcript
all_completed() {
  local good=0
  for id in "${IDS[@]}"; do
    wait_status "$URL/v1/jobs/$id" completed 60 || continue
    [ "$(curl -sS "$URL/v1/jobs/$id/result?format=text")" = "$1" ] && good=$((good + 1))
  done
  expect_eq "all ${#IDS[@]} jobs completed with their text" "${#IDS[@]}" "$good"
}

# --- batches across jobs: one device, batches of up to 4, 300 ms each -----------------------
# (the jobs are queued while the "model loads", so they all start together)
: >"$LOG"
CANARY_FAKE_DEVICES="sim/1/4/300" start_server "$TMP/a" --workers 2 --ready-when "$TMP/a.ready"
submit "$TMP"/j?.wav
touch "$TMP/a.ready"
all_completed "Chunk 1 of 3. Chunk 2 of 3. Chunk 3 of 3."
expect_eq "every chunk ran exactly once" "24 24" \
  "$(awk '{for (i = 4; i <= NF; i++) print $i}' "$LOG" | sort | uniq | wc -l) $(awk '{n += $3} END {print n}' "$LOG")"
expect_eq "no batch above max_batch" "4" "$(awk '{print $3}' "$LOG" | sort -n | tail -1)"
most=$(awk '{delete j; d = 0; for (i = 4; i <= NF; i++) {split($i, p, ":"); if (!(p[1] in j)) {j[p[1]] = 1; d++}} print d}' "$LOG" | sort -n | tail -1)
expect_eq "a batch held chunks of 4 different jobs" "4" "$most"
nb=$(wc -l <"$LOG")
[ "$nb" -le 8 ] && ok "24 chunks ran in $nb batches" || bad "24 chunks took $nb batches (batching across jobs expected <= 8)"
req "$URL/metrics"
expect_eq "metrics count batches and their chunks" "$nb 24" "$(metric canary_batches_total) $(metric canary_batch_chunks_total)"
expect_eq "device batches" "$nb" "$(metric 'canary_device_batches_total{device="sim",outcome="done"}')"
req "$URL/v1/jobs/${IDS[0]}"
expect_eq "the job record names its device" '["sim"]' "$(jq -c .devices "$TMP/body")"

# A short job's chunk joins the next batch, beside the long job's chunks (fairness).
: >"$LOG"
submit "$TMP/long.wav"
L=${IDS[0]}
for _ in $(seq 1 100); do [ "$(curl -sS "$URL/v1/jobs/$L" | jq .chunks.done)" -ge 8 ] && break; sleep 0.05; done
before=$(wc -l <"$LOG")
expect_code "short request while the long job runs" 200 -F file=@"$TMP/short.wav" -F response_format=text "$URL/v1/audio/transcriptions"
expect_eq "short transcript" "Chunk 1 of 1." "$(cat "$TMP/body")"
# (the log names a job by its stored audio file: the job id for /v1/jobs)
at=$(awk -v L="$L" -v B="$before" 'NR > B { for (i = 4; i <= NF; i++) { split($i, p, ":"); if (p[1] != L) { print NR; exit } } }' "$LOG")
[ -n "$at" ] && [ "$at" -le $((before + 2)) ] && ok "the short chunk ran in batch $at, $((at - before)) after its arrival" \
  || bad "the short chunk waited: batch ${at:-none}, the log had $before batches when it arrived"
stop_server "$SPID"

# --- chunks with different decoding parameters never share a batch ---------------------------
: >"$LOG"
CANARY_FAKE_DEVICES="sim/1/4/100" start_server "$TMP/k" --workers 2 --ready-when "$TMP/k.ready"
en=() de=()
for i in 1 2 3 4; do
  req -F file=@"$TMP/j$i.wav" "$URL/v1/jobs"; en+=("$(jb .id)")
  req -F file=@"$TMP/j$i.wav" -F language=de "$URL/v1/jobs"; de+=("$(jb .id)")
done
touch "$TMP/k.ready"
IDS=("${en[@]}" "${de[@]}")
all_completed "Chunk 1 of 3. Chunk 2 of 3. Chunk 3 of 3."
mixed=$(awk -v en="${en[*]}" '
  BEGIN { n = split(en, e, " "); for (i = 1; i <= n; i++) isen[e[i]] = 1 }
  { a = 0; b = 0; for (i = 4; i <= NF; i++) { split($i, p, ":"); if (p[1] in isen) a++; else b++ } if (a && b) print }' "$LOG")
expect_eq "no batch mixes en and de chunks" "" "$mixed"
[ "$(awk '$3 > 1' "$LOG" | wc -l)" -ge 2 ] && ok "yet both languages were batched" || bad "no multi-chunk batches: $(cat "$LOG")"
stop_server "$SPID"

# --- two devices, one 50x faster: the fast one takes more of the batches --------------------
# (least-loaded dispatch gives the slow one a batch whenever it is idle; a loaded machine
# stretches the fast one's sleeps, so only a 2x margin is demanded)
: >"$LOG"
CANARY_FAKE_DEVICES="fast/1/2/20,slow/1/2/1000" start_server "$TMP/b" --workers 2
submit "$TMP"/j?.wav "$TMP/six.wav"
IDS6=("${IDS[@]}")
IDS=("${IDS6[@]:0:8}")
all_completed "Chunk 1 of 3. Chunk 2 of 3. Chunk 3 of 3."
IDS=("${IDS6[8]}")
all_completed "Chunk 1 of 6. Chunk 2 of 6. Chunk 3 of 6. Chunk 4 of 6. Chunk 5 of 6. Chunk 6 of 6."
req "$URL/metrics"
fast=$(metric 'canary_device_batches_total{device="fast",outcome="done"}')
slow=$(metric 'canary_device_batches_total{device="slow",outcome="done"}')
[ "$slow" -ge 1 ] && [ "$fast" -ge $((2 * slow)) ] && ok "fast device ran $fast batches, slow $slow" \
  || bad "load not balanced by speed: fast $fast batches, slow $slow"
expect_grep "busy seconds per device" 'canary_device_busy_seconds_total{device="slow"} [0-9]' "$TMP/body"
used=$(for id in "${IDS6[@]}"; do curl -sS "$URL/v1/jobs/$id" | jq -r '.devices[]'; done | sort -u | tr '\n' ' ')
expect_eq "job records name the devices that ran them" "fast slow " "$used"
stop_server "$SPID"

# --- a device fails: it is retired and its batches finish on the other ---------------------
: >"$LOG"
CANARY_FAKE_DEVICES="bad/1/2/20/0/0/2,good/1/2/60" start_server "$TMP/c" --workers 2
submit "$TMP"/j[1-6].wav
all_completed "Chunk 1 of 3. Chunk 2 of 3. Chunk 3 of 3."
req "$URL/metrics"
expect_eq "health gauges" "0 1" "$(metric 'canary_device_healthy{device="bad"}') $(metric 'canary_device_healthy{device="good"}')"
expect_eq "the bad device: 2 batches done, then 1 failed and none after" "2 1" \
  "$(metric 'canary_device_batches_total{device="bad",outcome="done"}') $(metric 'canary_device_batches_total{device="bad",outcome="failed"}')"
expect_eq "every chunk was delivered" "18" "$(metric canary_batch_chunks_total)"
expect_code "GET /" 200 "$URL/"
expect_eq "GET / lists the executors" "bad 1 2 good 1 2" "$(jb '[.hardware.devices[] | .device, .workers, .max_batch] | map(tostring) | join(" ")')"
expect_eq "GET / shows the retired device and why" "false true simulated failure of bad" \
  "$(jb '[(.hardware.devices[] | select(.device == "bad") | .healthy), (.hardware.devices[] | select(.device == "good") | .healthy), (.hardware.devices[] | select(.device == "bad") | .last_error)] | map(tostring) | join(" ")')"
expect_rc 1 "hwinfo --server: exit 1 with an unhealthy device" "$CANARY_BIN" hwinfo --server "$URL"
expect_grep "names it and why" "^bad     UNHEALTHY: 1 executor(s) x batch 2, 0 busy, 2 batches done, 1 failed, busy [0-9.]* s, memory 0 / 0 MiB: simulated failure of bad" "$TMP/out"
expect_grep "and the healthy one" "^good    healthy: 1 executor(s) x batch 2" "$TMP/out"
expect_rc 1 "hwinfo --server --json" "$CANARY_BIN" hwinfo --server "$URL" --json
expect_eq "its JSON" "1 bad good" "$(jq -r '[.unhealthy, .devices[].device] | map(tostring) | join(" ")' "$TMP/out")"
failed_line=$(awk '$1 == "bad"' "$LOG" | sed -n 3p)
expect_eq "the failed batch ran again on the good device" "good" \
  "$(grep -F -- "${failed_line#bad 0 }" "$LOG" | grep -v '^bad' | head -1 | awk '{print $1}')"
stop_server "$SPID"

# --- no device left: the job fails with the reason, later ones at once ---------------------
CANARY_FAKE_DEVICES="bad/1/1/10/0/0/0" start_server "$TMP/d" --workers 1
submit "$TMP/j1.wav"
wait_status "$URL/v1/jobs/${IDS[0]}" failed 30 && ok "job on a failing device fails" || bad "job on a failing device fails"
expect_eq "with the device's error" "bad: simulated failure of bad device_failed" \
  "$(curl -sS "$URL/v1/jobs/${IDS[0]}" | jq -r '.error.message + " " + .error.code')"
expect_code "a request after that: 503 (the hardware, not a bug)" 503 -F file=@"$TMP/j2.wav" "$URL/v1/audio/transcriptions"
expect_grep "says no device is left" "no healthy device left" "$TMP/body"
expect_eq "code device_failed" "device_failed" "$(jb .error.code)"
expect_code "/health says so" 503 "$URL/health"
expect_grep "and why" "no healthy device left: all 1 failed" "$TMP/body"
stop_server "$SPID"

# --- admission by memory: "small" holds 2 chunks of 40 MiB, "big" 25 -------------------------
: >"$LOG"
CANARY_FAKE_DEVICES="small/1/4/50/100/40,big/1/4/100/1000/40" start_server "$TMP/e" --workers 2 --ready-when "$TMP/e.ready"
submit "$TMP"/j?.wav
touch "$TMP/e.ready"
all_completed "Chunk 1 of 3. Chunk 2 of 3. Chunk 3 of 3."
expect_eq "no batch above 2 chunks on small" "" "$(awk '$1 == "small" && $3 > 2' "$LOG")"
[ -n "$(awk '$1 == "big" && $3 > 2' "$LOG")" ] && ok "larger batches ran on big" || bad "no batch above 2 chunks on big: $(cat "$LOG")"
req "$URL/metrics"
expect_eq "memory budget gauges" "104857600 1048576000" \
  "$(metric 'canary_device_memory_budget_bytes{device="small"}') $(metric 'canary_device_memory_budget_bytes{device="big"}')"
stop_server "$SPID"
CANARY_FAKE_DEVICES="tiny/1/4/10/10/40" start_server "$TMP/f" --workers 1
expect_code "a chunk larger than every device budget" 400 -F file=@"$TMP/j1.wav" "$URL/v1/audio/transcriptions"
expect_grep "names the sizes" "batch needs 40.0 MiB; the largest device budget is 10.0 MiB (tiny)" "$TMP/body"
finish
