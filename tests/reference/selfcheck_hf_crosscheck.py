#!/usr/bin/python3
"""Runs hf_prepare.py and then hf_crosscheck.py end to end against fake_transformers/ (a stand-in with
transformers' parameter names that computes with canary_ref), so every stage of the script that the
lead runs once on the GPU machine has been executed here. Passing means the flow, the key conversion,
the positional-table patch and the comparisons work; it says nothing about transformers' numerics.

  selfcheck_hf_crosscheck.py --model MODELS/canary-1b-v2-tiny.nemo --work DIR
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    prep = os.path.join(args.work, "hfprep")
    r = subprocess.run([sys.executable, os.path.join(HERE, "hf_prepare.py"), args.model, "--out", prep])
    if r.returncode != 0:
        print("hf_prepare.py failed")
        return 1
    env = dict(os.environ, FAKE_HF_NEMO=os.path.join(prep, "model.nemo"),
               PYTHONPATH=os.path.join(HERE, "fake_transformers"))
    out = os.path.join(args.work, "hf_report.json")
    r = subprocess.run([sys.executable, os.path.join(HERE, "hf_crosscheck.py"), "--prep", prep, "--out", out,
                        "--device", "cpu"], env=env, capture_output=True, text=True, timeout=600)
    if not os.path.isfile(out):
        print(r.stdout[-3000:], r.stderr[-3000:])
        return 1
    rep = json.load(open(out))
    want = ["load", "encoder", "feature_extractor", "decoder_hf_table", "generate_hf_table", "pos_table_patch",
            "decoder_nemo_table", "generate_nemo_table"]
    bad = [s for s in want if s not in rep["stages"] or not rep["stages"][s].get("pass")]
    for s in want:
        st = rep["stages"].get(s, {})
        print(f"{'ok  ' if s not in bad else 'FAIL'} {s}: " +
              json.dumps({k: v for k, v in st.items() if k not in ("cases", "items", "traceback")})[:300])
    if bad or r.returncode != 0:
        print(f"FAILED: stages {bad}, exit code {r.returncode}")
        return 1
    print("hf_crosscheck flow passed against the stand-in")
    return 0


if __name__ == "__main__":
    sys.exit(main())
