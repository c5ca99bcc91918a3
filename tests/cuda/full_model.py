#!/usr/bin/env python3
"""A random-weight full-size Canary checkpoint for the GPU benchmark, built in two halves so that
a GPU machine with torch but without sentencepiece or PyYAML (and without network) can finish it:

    full_model.py skeleton LAYOUT DIR [SIZE]  here (SIZE full, or tiny to test this script), Debian's /usr/bin/python3 (torch, sentencepiece,
                                         PyYAML): DIR gets the .nemo's model_config.yaml and
                                         tokenizer artifacts, exactly as tools/make-test-model
                                         writes them, and dims.json (a few KB in all)
    full_model.py weights DIR OUT.nemo   there, torch only: seeded random weights of those
                                         dimensions (tools/testmodel/model.py), packed with the
                                         skeleton into OUT.nemo as make-test-model packs it

The benchmark ignores EOS, so the EOS calibration of make-test-model is skipped; everything else
(NeMo key names, shapes, dtypes, tied head, tar layout) is make-test-model's own code. Layouts with
the unified tokenizer (canary-1b-v2, which also carries a CTC aligner) are not supported here.
"""
import importlib.machinery
import importlib.util
import json
import os
import random
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, "tools")
sys.path.insert(0, TOOLS)


def fail(msg):
    print(f"full_model.py: {msg}", file=sys.stderr)
    sys.exit(1)


def skeleton(name, out_dir, size="full"):
    loader = importlib.machinery.SourceFileLoader("make_test_model", os.path.join(TOOLS, "make-test-model"))
    spec = importlib.util.spec_from_loader("make_test_model", loader)
    mtm = importlib.util.module_from_spec(spec)
    loader.exec_module(mtm)  # needs torch, sentencepiece and PyYAML: Debian's python3
    from testmodel import config as cfgmod
    from testmodel import layouts as L

    if name not in L.LAYOUTS:
        fail(f"unknown layout {name} (known: {', '.join(sorted(L.LAYOUTS))})")
    layout = L.LAYOUTS[name]
    if layout["tokenizer"] == "unified":
        fail(f"{name}: the unified tokenizer and CTC aligner are not supported (use canary-1b-flash)")
    dims = layout[size]
    seed = 1234 * 1000 + sorted(L.LAYOUTS).index(name)  # make-test-model's default seed scheme
    rng = random.Random(f"1234/{name}/{size}/uuid")
    folder = os.path.join(out_dir, "nemo")
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="full-model-") as work:
        packer = mtm.Packer(folder, rng)
        tok_cfg, tok_vocab, eos_id, _ = mtm.build_agg_tokenizers(layout, dims, seed, work, packer)
    rows = 8 * ((tok_vocab + 7) // 8)
    cfg = cfgmod.aed(layout, dims, tok_cfg, rows, layout["nemo_version"])
    mtm.write_yaml(os.path.join(folder, "model_config.yaml"), cfg)
    with open(os.path.join(out_dir, "dims.json"), "w") as f:
        json.dump({"layout": name, "dims": dims, "vocab_rows": rows, "seed": seed, "eos_id": eos_id}, f)
    print(f"{name}: skeleton in {out_dir} (vocab {tok_vocab}, {rows} rows)")


def weights(skel_dir, out_path):
    import torch
    from testmodel import model as M

    with open(os.path.join(skel_dir, "dims.json")) as f:
        meta = json.load(f)
    d = meta["dims"]
    t0 = time.time()
    torch.manual_seed(meta["seed"])
    model = M.EncDecMultiTaskModel(d["d_enc"], d["enc_layers"], d["enc_heads"], d["sub_ch"], d["d_dec"],
                                   d["dec_layers"], meta["vocab_rows"], d["max_seq"])
    M.randomize(model, meta["seed"])
    params = sum(p.numel() for p in model.parameters())
    work = out_path + ".work"
    os.makedirs(work, exist_ok=True)
    ckpt = os.path.join(work, "model_weights.ckpt")
    torch.save(model.state_dict(), ckpt)
    del model

    def normalize(ti):  # as make-test-model: fixed owner and time
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        ti.mtime = 1700000000
        return ti

    src = os.path.join(skel_dir, "nemo")
    with tarfile.open(out_path + ".tmp", "w:") as tar:  # NeMo's layout: uncompressed, members "./..."
        tar.add(src, arcname=".", filter=normalize)
        tar.add(ckpt, arcname="./model_weights.ckpt", filter=normalize)
    os.replace(out_path + ".tmp", out_path)
    os.remove(ckpt)
    os.rmdir(work)
    print(json.dumps({"event": "full_model", "layout": meta["layout"], "params": params, "torch": torch.__version__,
                      "bytes": os.path.getsize(out_path), "seconds": round(time.time() - t0, 1)}))


def main():
    if len(sys.argv) in (4, 5) and sys.argv[1] == "skeleton":
        skeleton(sys.argv[2], sys.argv[3], *sys.argv[4:])
    elif len(sys.argv) == 4 and sys.argv[1] == "weights":
        weights(sys.argv[2], sys.argv[3])
    else:
        fail("usage: full_model.py skeleton LAYOUT DIR [full|tiny] | full_model.py weights DIR OUT.nemo")


if __name__ == "__main__":
    main()
