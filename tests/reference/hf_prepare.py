#!/usr/bin/python3
"""Precompute the reference side of the HuggingFace cross-check (hf_crosscheck.py runs the other side
on a GPU machine with transformers, where neither Debian packages nor this reference's deps exist).

  /usr/bin/python3 tests/reference/hf_prepare.py MODEL.nemo --out DIR

writes DIR/reference.json, DIR/nemo_config.json and float32 arrays (*.f32), and copies MODEL.nemo to
DIR/model.nemo, so DIR plus tests/reference/hf_crosscheck.py is all the GPU machine needs.
Cases: one real recording, and a padded batch of two (encoder masking). Features use NeMo 2.5
semantics, as transformers' ParakeetFeatureExtractor does. The decoder is run twice: with NeMo's
stored positional table (interleaved sin/cos) and with the [sin | cos] table transformers computes.
"""
import argparse
import hashlib
import json
import math
import os
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from canary_ref import features as F  # noqa: E402
from canary_ref import model as M  # noqa: E402
from canary_ref.audio import read_wav_16k  # noqa: E402
from canary_ref.decoding import max_generation_length  # noqa: E402
from canary_ref.reference import CanaryReference  # noqa: E402
from make_goldens import forced_ids  # noqa: E402

DATA = "/usr/share/pocketsphinx/test/data"
STEPS = 16  # teacher-forced log-prob rows stored per case and table


def hf_layout_table(n_pos, d):
    """transformers' CanaryPositionalEmbedding: [sin block | cos block], same frequencies, / sqrt(d)."""
    pos = torch.arange(n_pos, dtype=torch.float64)[:, None]
    inv = torch.exp(-torch.arange(d // 2, dtype=torch.float64) * (2.0 * math.log(10000.0) / d))
    ang = pos * inv
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=1) / math.sqrt(d)


def teacher_forced(ref, enc, enc_mask, prompt, ids, steps):
    """Log-probs at the prompt step and after each of the first steps-1 ids (true positions)."""
    sd, rows = ref.sd, []
    lp, st = M.decoder_step(sd, torch.tensor([prompt]), 0, M.DecoderState(), enc, enc_mask, ref.dec_heads,
                            ref.tok.pad)
    rows.append(lp[0])
    for j, t in enumerate(ids[: steps - 1]):
        lp, st = M.decoder_step(sd, torch.tensor([[t]]), len(prompt) + j, st, enc, enc_mask, ref.dec_heads,
                                ref.tok.pad)
        rows.append(lp[0])
    return torch.stack(rows)


def put(out, name, t):
    a = np.ascontiguousarray(torch.as_tensor(t).to(torch.float64).numpy().astype("<f4"))
    a.tofile(os.path.join(out, name + ".f32"))
    return {"file": name + ".f32", "shape": list(a.shape)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("nemo")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    ref = CanaryReference(args.nemo)
    shutil.copyfile(args.nemo, os.path.join(args.out, "model.nemo"))
    with open(os.path.join(args.out, "nemo_config.json"), "w") as f:
        json.dump(ref.nemo.config, f, indent=1)
    sem = "nemo-2.5"
    l870 = read_wav_16k(DATA + "/librivox/sense_and_sensibility_01_austen_64kb-0870.wav")
    l880 = read_wav_16k(DATA + "/librivox/sense_and_sensibility_01_austen_64kb-0880.wav")
    c2 = read_wav_16k(DATA + "/cards/002.wav")
    cases = {"librivox": [l870], "batch2": [l880, c2]}
    prompt_hf = ref.prompt(v2_style="hf")
    prompt_nemo = ref.prompt(v2_style="nemo")
    pos_key = "transf_decoder._embedding.position_embedding.pos_enc"
    nemo_table = ref.sd[pos_key].clone()
    hf_table = hf_layout_table(nemo_table.shape[0], nemo_table.shape[1]).to(ref.dtype)
    report = {"model_sha256": hashlib.sha256(open(args.nemo, "rb").read()).hexdigest(),
              "semantics": sem, "prompt_hf": prompt_hf, "prompt_nemo": prompt_nemo,
              "eos_id": ref.tok.eos, "pad_id": ref.tok.pad, "bos_id": ref.tok.bos,
              "max_sequence_length": ref.max_seq_len, "max_generation_delta": ref.max_delta,
              "pos_table_max_abs_diff_nemo_vs_hf_layout": float((nemo_table - hf_table).abs().max()),
              "cases": {}}
    for name, audios in cases.items():
        feats, flen = ref.features(audios, sem)
        enc, elen = ref.encode(feats, flen, sem)
        T = enc.shape[1]
        emask = torch.arange(T)[None] < elen[:, None]
        case = {"items": []}
        for i, a in enumerate(audios):
            item = {"samples": int(len(a)), "feature_frames": int(flen[i]), "encoder_frames": int(elen[i]),
                    "audio": put(args.out, f"{name}_audio_{i}", torch.from_numpy(a.astype(np.float64))),
                    "features": put(args.out, f"{name}_features_{i}", feats[i]),
                    "encoder_out": put(args.out, f"{name}_encoder_out_{i}", enc[i])}
            e1, m1 = enc[i:i + 1, : int(elen[i])], emask[i:i + 1, : int(elen[i])]
            # Decoded alone (no batch padding), so NeMo's limit uses this item's encoder length.
            gen = max_generation_length(ref.max_seq_len, int(elen[i]), len(prompt_hf), ref.max_delta)
            for table_name, table in (("nemo_table", nemo_table), ("hf_table", hf_table)):
                ref.sd[pos_key] = table
                ids, _ = ref.decode(e1, elen[i:i + 1], prompt_hf, "beam", 1)
                # Teacher-forced path: the reference's own ids, extended with fixed text ids when
                # decoding stopped early, so there are always STEPS rows to compare.
                teacher = (list(ids[0]) + forced_ids(ref))[: STEPS - 1]
                lp = teacher_forced(ref, e1, m1, prompt_hf, teacher, STEPS)
                # NeMo beam 1 makes at most gen + 1 tokens; one more step only when it ended with EOS.
                ended_eos = len(ids[0]) < gen + 1
                item[table_name] = {"beam1_ids": ids[0], "teacher_ids": teacher,
                                    "logprobs": put(args.out, f"{name}_{table_name}_lp_{i}", lp),
                                    "ended_with_eos": ended_eos,
                                    "max_new_tokens": len(ids[0]) + 1 if ended_eos else len(ids[0])}
            ref.sd[pos_key] = nemo_table
            case["items"].append(item)
        report["cases"][name] = case
        print(f"{name}: encoder frames {elen.tolist()}, beam1 tokens "
              f"{[len(it['nemo_table']['beam1_ids']) for it in case['items']]} (nemo table), "
              f"{[len(it['hf_table']['beam1_ids']) for it in case['items']]} (hf table)")
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
