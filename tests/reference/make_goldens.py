#!/usr/bin/python3
"""Write the golden data every parity test compares against:

  <out>/<layout>/<case>/manifest.json + NAME.f32 (raw little-endian float32, C-contiguous)

for each tiny model in --models (<layout>-tiny.nemo). Format and cases: docs/REFERENCE.md.
Everything is computed in float64 by canary_ref and rounded to float32 only when written.
A stamp (hash of the models, this script and canary_ref) skips the work when nothing changed.

  /usr/bin/python3 tests/reference/make_goldens.py --models build/asan/models --out build/asan/golden
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from canary_ref import features as F  # noqa: E402
from canary_ref import model as M  # noqa: E402
from canary_ref.audio import read_wav_16k  # noqa: E402
from canary_ref.reference import CanaryReference  # noqa: E402

LAYOUTS = ["canary-1b", "canary-1b-flash", "canary-180m-flash", "canary-1b-v2"]
DATA = "/usr/share/pocketsphinx/test/data"
LIBRIVOX = DATA + "/librivox/sense_and_sensibility_01_austen_64kb-0{}.wav"
LOGPROB_STEPS = 4
GOLDEN_VERSION = 2

# Feature semantics each layout is checked with by default: the NeMo generation it was trained
# with (canary-1b 1.23, flash 2.2/2.3: before 2.5; canary-1b-v2: 2.5). The "*_alt" case uses the other.
DEFAULT_SEMANTICS = {"canary-1b": "nemo-2.4", "canary-1b-flash": "nemo-2.4", "canary-180m-flash": "nemo-2.4",
                     "canary-1b-v2": "nemo-2.5"}


def read_raw_s16(path):
    return np.fromfile(path, dtype="<i2").astype(np.float32) / 32768.0


def inputs():
    """name -> (list of float32 arrays, options). Deterministic, from pocketsphinx-testdata."""
    l870, l880, l890, l920, l930 = (read_wav_16k(LIBRIVOX.format(n)) for n in (870, 880, 890, 920, 930))
    cards = [read_wav_16k(f"{DATA}/cards/00{i}.wav") for i in (1, 2, 5)]
    allspeech = np.concatenate([l870, l880, l890, l920, l930] + cards)
    ten = np.concatenate([l880, l890, l920])[:160000]
    assert ten.size == 160000
    reps = int(np.ceil(592000 / allspeech.size))
    thirty_seven = np.tile(allspeech, reps)[:592000]
    return {
        # 0.7 s of real speech: NeMo's transcribe() pads it to 1 s (2400 zeros each side).
        "short": ([l880[8000:8000 + 11200]], {}),
        "10s": ([ten], {}),
        "37s": ([thirty_seven], {}),
        "batch": ([l880, cards[1], read_raw_s16(f"{DATA}/goforward.raw"), cards[0]], {}),
        "silence": ([np.zeros(32000, np.float32)], {}),
        "librivox": ([l870], {}),
        # Same recording, other feature semantics, translation prompt without punctuation.
        "librivox_alt": ([l870], {"target_lang": "de", "pnc": False, "alt_semantics": True}),
        # The <|timestamp|> prompt slot (spec §7.7): only the models with timestamp tokens.
        "batch_ts": ([l880, cards[1], read_raw_s16(f"{DATA}/goforward.raw"), cards[0]],
                     {"timestamp": True, "layouts": ("canary-1b-flash", "canary-180m-flash")}),
    }


FORCED_STEPS = 8


def forced_ids(ref):
    """FORCED_STEPS ordinary text ids, spread over the (last) text block, deterministic per model."""
    name, off, sp = ref.tok.blocks[-1]
    n = sp.get_piece_size()
    out = []
    for j in range(1, 4 * n):
        i = (j * 7919) % n
        if sp.is_control(i) or sp.is_unknown(i) or sp.id_to_piece(i).startswith("<"):
            continue
        out.append(off + i)
        if len(out) == FORCED_STEPS:
            break
    return out


def ts_probes(ref):
    """Fixed id sequences with timestamp tokens and their NeMo timestamp-mode text: random-weight
    models rarely close a <|S|> word <|E|> group by themselves."""
    t = forced_ids(ref)
    ts = lambda n: ref.tok.special_id(f"<|{n}|>")
    en = ref.tok.special_id("<|en|>")
    seqs = [
        [ts(3), t[0], t[1], ts(7), ts(8), t[2], ts(12), t[3], ts(13), ts(14), ts(20), t[4], t[5]],
        [t[0], ts(5), t[1]],
        [ts(1), en, t[2], ts(4), ts(4), t[6], t[7], ts(899)],
        [ts(2), ts(9)],
    ]
    return [{"ids": s, "text": ref.tok.timestamp_text(s)[0]} for s in seqs]


def teacher_forced(ref, enc, elen, prompt, ids):
    """[B, 1 + len(ids), V] log-probs: after the prompt, then after each forced id (true positions)."""
    B, T, _ = enc.shape
    emask = torch.arange(T)[None, :] < elen[:, None]
    lp, st = M.decoder_step(ref.sd, torch.tensor([prompt] * B), 0, M.DecoderState(), enc, emask,
                            ref.dec_heads, ref.tok.pad)
    rows = [lp]
    for j, t in enumerate(ids):
        lp, st = M.decoder_step(ref.sd, torch.full((B, 1), t), len(prompt) + j, st, enc, emask,
                                ref.dec_heads, ref.tok.pad)
        rows.append(lp)
    return torch.stack(rows, dim=1)


def write_f32(path, t):
    a = np.ascontiguousarray(torch.as_tensor(t).detach().to(torch.float64).numpy().astype("<f4"))
    a.tofile(path)
    return list(a.shape)


def golden_case(ref, layout, case, audios, opts, out_dir):
    semantics = DEFAULT_SEMANTICS[layout]
    if opts.get("alt_semantics"):
        semantics = "nemo-2.5" if semantics == "nemo-2.4" else "nemo-2.4"
    popts = {"source_lang": "en", "target_lang": opts.get("target_lang", "en"), "pnc": opts.get("pnc", True)}
    if opts.get("timestamp"):
        popts["timestamp"] = True
    raw = [np.asarray(a, np.float32) for a in audios]
    padded = [F.pad_min_duration(a) for a in raw]
    feats, flen = ref.features(padded, semantics)
    taps = {}
    enc, elen = ref.encode(feats, flen, semantics, taps)
    n_layers = sum(1 for k in taps if k.startswith("enc_layer_"))
    prompt = ref.prompt(**popts)
    greedy_ids, _ = ref.decode(enc, elen, prompt, "greedy")
    beam1_ids, steps = ref.decode(enc, elen, prompt, "beam", 1, logprob_steps=LOGPROB_STEPS)
    beam4_ids, _ = ref.decode(enc, elen, prompt, "beam", 4)
    # Teacher-forced rows that do not depend on when EOS comes: the prompt step, then FORCED_STEPS
    # fixed text ids fed at true positions through the cache.
    forced = forced_ids(ref)
    forced_lp = teacher_forced(ref, enc, elen, prompt, forced)

    os.makedirs(out_dir, exist_ok=True)
    arrays = {}
    B = len(raw)
    batch = B > 1

    def put(name, t, i):
        key = f"{name}_{i}" if batch else name
        arrays[key] = {"file": key + ".f32", "shape": write_f32(os.path.join(out_dir, key + ".f32"), t), "dtype": "f32"}

    for i in range(B):
        put("input", padded[i], i)
        if padded[i].size != raw[i].size:
            put("input_unpadded", raw[i], i)
        put("features", feats[i], i)
        put("subsampling", taps["subsampling"][i], i)
        put("enc_layer_0", taps["enc_layer_0"][i], i)
        put("enc_layer_mid", taps[f"enc_layer_{n_layers // 2}"][i], i)
        put("enc_layer_last", taps[f"enc_layer_{n_layers - 1}"][i], i)
        put("encoder_out", enc[i], i)
        # Beam-1 path (true positions): step 0 = after the prompt, step s = after generated token s-1.
        n_steps = min(steps.shape[1], len(beam1_ids[i]) + 1)
        put("decoder_logprobs_first_steps", steps[i, :n_steps], i)
        put("decoder_logprobs_forced", forced_lp[i], i)

    def per_item(v):
        return v if batch else v[0]

    tok = ref.tok
    manifest = {
        "golden_version": GOLDEN_VERSION,
        "layout": layout,
        "case": case,
        "semantics": semantics,
        "sample_rate": 16000,
        "batch_size": B,
        "arrays": arrays,
        "prompt_ids": prompt,
        "greedy_ids": per_item(greedy_ids),
        "beam1_ids": per_item(beam1_ids),
        "beam4_ids": per_item(beam4_ids),
        "greedy_text": per_item([tok.ids_to_text(x) for x in greedy_ids]),
        "beam1_text": per_item([tok.ids_to_text(x) for x in beam1_ids]),
        "beam4_text": per_item([tok.ids_to_text(x) for x in beam4_ids]),
        **({} if not popts.get("timestamp") else {
            f"{k}_ts_text": per_item([tok.timestamp_text(x)[0] for x in v])
            for k, v in (("greedy", greedy_ids), ("beam1", beam1_ids), ("beam4", beam4_ids))}),
        **({} if not popts.get("timestamp") else {"ts_probes": ts_probes(ref)}),
        **({} if not popts.get("timestamp") else {
            "beam1_ts_words": per_item([[{"word": w, "start_frame": a, "end_frame": b}
                                         for w, a, b in tok.timestamp_text(x)[1]] for x in beam1_ids])}),
        "lengths": per_item([
            {"samples": int(padded[i].size), "samples_unpadded": int(raw[i].size),
             "features": int(flen[i]), "feature_frames_tensor": int(feats.shape[2]),
             "encoder": int(elen[i]), "encoder_frames_tensor": int(enc.shape[1]),
             "logprob_steps": int(min(steps.shape[1], len(beam1_ids[i]) + 1))}
            for i in range(B)]),
        "options": {
            **popts,
            "prompt_format": ref.prompt_format,
            "v2_prompt_style": "nemo (SentencePiece encode of the prompt string)" if tok.kind != "agg" else None,
            "eos_id": tok.eos, "pad_id": tok.pad,
            "max_generation_delta": ref.max_delta,
            "max_generation_delta_greedy": ref.max_delta_greedy,
            "forced_ids": forced,
            "max_sequence_length": ref.max_seq_len,
            "length_penalty": 0.0,
            "pad_min_duration_s": 1.0, "pad_direction": "both",
            "encoder_layers": n_layers, "enc_layer_mid_index": n_layers // 2,
            "encoder_out": "encoder states after encoder_decoder_proj (= enc_layer_last when there is none)",
            "batch_arrays": "per item, padded to the batch tensor length; only frames < lengths are meaningful",
            "compute_dtype": "float64 (stored as float32)",
        },
    }
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def stamp_of(models):
    h = hashlib.sha256()
    h.update(str(GOLDEN_VERSION).encode())
    for root in (os.path.join(HERE, "canary_ref"),):
        for n in sorted(os.listdir(root)):
            if n.endswith(".py"):
                h.update(open(os.path.join(root, n), "rb").read())
    h.update(open(os.path.abspath(__file__), "rb").read())
    for m in models:
        h.update(open(m, "rb").read())
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", required=True, help="directory with <layout>-tiny.nemo")
    ap.add_argument("--out", required=True, help="golden output directory")
    ap.add_argument("--layouts", default=",".join(LAYOUTS))
    ap.add_argument("--cases", default="", help="comma list (default: all)")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    # Tiny tensors: threads only add synchronisation cost (and the CI runs tests in parallel).
    torch.set_num_threads(1)
    layouts = [x for x in args.layouts.split(",") if x]
    models = [os.path.join(args.models, f"{lay}-tiny.nemo") for lay in layouts]
    for m in models:
        if not os.path.isfile(m):
            print(f"make_goldens: model {m} not found (run the make_test_models fixture first)", file=sys.stderr)
            return 2
    stamp_path = os.path.join(args.out, ".stamp")
    stamp = stamp_of(models) + "|" + args.layouts + "|" + args.cases
    if not args.force and os.path.isfile(stamp_path) and open(stamp_path).read() == stamp:
        print(f"make_goldens: {args.out} is up to date")
        return 0
    all_inputs = inputs()
    cases = [c for c in args.cases.split(",") if c] or list(all_inputs)
    for lay, m in zip(layouts, models):
        t0 = time.time()
        ref = CanaryReference(m)
        shutil.rmtree(os.path.join(args.out, lay), ignore_errors=True)
        for case in cases:
            audios, opts = all_inputs[case]
            if lay not in opts.get("layouts", (lay,)):
                continue
            man = golden_case(ref, lay, case, audios, opts, os.path.join(args.out, lay, case))
            b1 = man["beam1_ids"]
            n = [len(x) for x in b1] if man["batch_size"] > 1 else len(b1)
            print(f"  {lay}/{case}: {man['semantics']}, beam1 tokens {n}")
        print(f"make_goldens: {lay} done in {time.time() - t0:.1f} s")
    os.makedirs(args.out, exist_ok=True)
    with open(stamp_path, "w") as f:
        f.write(stamp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
