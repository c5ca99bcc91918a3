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
