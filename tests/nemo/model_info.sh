#!/usr/bin/env bash
# canary-stt model-info on the tiny generated models: the JSON agrees with the generator's own
# record of each model (parameters, vocabulary, layout); errors name the file.
. "$CANARY_SOURCE_DIR/tests/integration/lib.sh"
M="$CANARY_BINARY_DIR/models"
for layout in canary-1b canary-1b-flash canary-180m-flash canary-1b-v2; do
  expect_rc 0 "$layout: model-info --json" "$CANARY_BIN" model-info "$M/$layout-tiny.nemo" --json
  if /usr/bin/python3 - "$TMP/out" "$M/$layout-tiny.nemo.json" "$layout" <<'PY'
import json, sys
got = json.load(open(sys.argv[1]))
gen = json.load(open(sys.argv[2]))
layout = sys.argv[3]
assert got["parameters"] == gen["params"], (got["parameters"], gen["params"])
assert got["tokenizer"]["vocab_size"] == gen["tokenizer_vocab"]
assert got["decoder"]["vocab_size"] == gen["vocab_rows"]
assert got["tokenizer"]["eos"] == gen["eos_id"]
assert got["prompt_format"] == ("canary" if layout == "canary-1b" else "canary2")
assert got["tokenizer"]["layout"] == ("unified" if layout == "canary-1b-v2" else "aggregate")
assert got["timestamps_model"] == (layout == "canary-1b-v2")
assert got["projection"] == ({"in": 48, "out": 64} if layout == "canary-180m-flash" else None)
langs = got["tokenizer"]["languages"]
assert len(langs) == (25 if layout == "canary-1b-v2" else 4), langs
assert got["preprocessor"]["n_mels"] == 128 and got["preprocessor"]["hop_length"] == 160
assert got["tensors"]["by_dtype"]["i64"]["count"] >= 1  # BatchNorm num_batches_tracked
PY
  then ok "$layout: JSON matches the generator"; else bad "$layout: JSON mismatch"; fi
  expect_rc 0 "$layout: model-info text" "$CANARY_BIN" model-info "$M/$layout-tiny.nemo"
  expect_grep "$layout: text shows the encoder" "encoder: *FastConformer" "$TMP/out"
  expect_grep "$layout: text shows languages" "languages: *[a-z]" "$TMP/out"
done
# an old-style gzip'd .nemo: unpacked once into the cache, then described identically
gzip -c "$M/canary-1b-v2-tiny.nemo" >"$TMP/v2.nemo"
"$CANARY_BIN" model-info "$M/canary-1b-v2-tiny.nemo" --json | sed 's/"path":"[^"]*"//' >"$TMP/plain.json"
expect_rc 0 "gzip'd .nemo" "$CANARY_BIN" model-info "$TMP/v2.nemo" --json --cache-dir "$TMP/cache"
sed -i 's/"path":"[^"]*"//' "$TMP/out"
if cmp -s "$TMP/out" "$TMP/plain.json"; then ok "gzip'd .nemo described like the tar"; else bad "gzip'd .nemo differs"; fi
if ls "$TMP"/cache/unpacked/v2.nemo-*.tar >/dev/null 2>&1; then ok "unpacked into the cache"; else bad "no cache file"; fi
expect_rc 0 "gzip'd .nemo again (from the cache)" "$CANARY_BIN" model-info "$TMP/v2.nemo" --cache-dir "$TMP/cache"
head -c 300000 "$TMP/v2.nemo" >"$TMP/v2cut.nemo"
expect_rc 1 "truncated gzip" "$CANARY_BIN" model-info "$TMP/v2cut.nemo" --cache-dir "$TMP/cache"
expect_grep "truncated gzip explained" "gzip" "$TMP/err"
if ls "$TMP"/cache/unpacked/v2cut.nemo-* >/dev/null 2>&1; then bad "a partial cache file was left"; else ok "no partial cache file"; fi
expect_rc 2 "missing file" "$CANARY_BIN" model-info "$TMP/none.nemo"
expect_grep "missing file named" "none.nemo" "$TMP/err"
head -c 100000 "$M/canary-1b-tiny.nemo" >"$TMP/cut.nemo"
expect_rc 1 "truncated file" "$CANARY_BIN" model-info "$TMP/cut.nemo"
expect_grep "truncated file named" "cut.nemo" "$TMP/err"
printf 'hello' >"$TMP/junk.nemo"
expect_rc 1 "not a tar" "$CANARY_BIN" model-info "$TMP/junk.nemo"
expect_grep "not a tar explained" "junk.nemo" "$TMP/err"
expect_rc 0 "model-info --help" "$CANARY_BIN" model-info --help
finish
