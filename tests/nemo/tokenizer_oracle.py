#!/usr/bin/python3
"""Expected tokenizer behaviour for the tiny generated models, from the sentencepiece library
(Debian's python3-sentencepiece) and NeMo's rules: writes OUTDIR/tok_<layout>.txt with lines
  D <ids comma-separated> <hex utf-8 text>        detokenization
  E <lang|-> <hex text> <ids comma-separated>      encoding
Text is hex so that any byte survives. Usage: tokenizer_oracle.py MODELS_DIR OUTDIR
"""
import io
import os
import random
import sys
import tarfile
import unicodedata

import sentencepiece as spm
import yaml

MODELS, OUT = sys.argv[1], sys.argv[2]
os.makedirs(OUT, exist_ok=True)
SPACE = "\u2581"


def load(path):
    with tarfile.open(path, "r:") as tar:
        def member(name):
            name = name[5:] if name.startswith("nemo:") else name
            for m in tar.getmembers():
                if os.path.basename(m.name) == name:
                    return tar.extractfile(m).read()
            raise KeyError(name)
        cfg = yaml.safe_load(member("model_config.yaml"))
        tok = cfg["tokenizer"]
        if tok.get("type") == "agg":
            blocks = []
            for lang, sub in tok["langs"].items():
                blocks.append((lang, spm.SentencePieceProcessor(model_proto=member(sub["model_path"]))))
            return True, blocks
        return False, [("", spm.SentencePieceProcessor(model_proto=member(tok["model_path"])))]


def hexs(s):
    return s.encode("utf-8").hex() or "-"


def is_special(piece):
    return (piece.startswith("<|") and piece.endswith("|>")) or piece == "<pad>"


for layout in ["canary-1b", "canary-1b-flash", "canary-180m-flash", "canary-1b-v2"]:
    agg, blocks = load(os.path.join(MODELS, f"{layout}-tiny.nemo"))
    rng = random.Random(f"oracle/{layout}")
    offsets, off = [], 0
    for _, sp in blocks:
        offsets.append(off)
        off += sp.get_piece_size()
    lines = []
    if agg:
        # NeMo's AggregateTokenizer.ids_to_text with special (spl_tokens) ids dropped, stripped
        spl = [i for i, (n, _) in enumerate(blocks) if n == "spl_tokens"][0]
        for k in range(300):
            ids = []
            for _ in range(rng.randint(0, 40)):
                b = rng.randrange(len(blocks))
                ids.append(offsets[b] + rng.randrange(blocks[b][1].get_piece_size()))
            pieces = []
            for i in ids:
                b = max(j for j in range(len(blocks)) if offsets[j] <= i)
                if b != spl:
                    pieces.append(blocks[b][1].id_to_piece(i - offsets[b]))
            text = "".join(pieces).replace(SPACE, " ").strip(" ")
            lines.append(f"D {','.join(map(str, ids)) or '-'} {hexs(text)}")
        # within one language block (no <unk>), this is exactly spm_decode
        for b, (name, sp) in enumerate(blocks):
            if b == spl:
                continue
            pool = [i for i in range(sp.get_piece_size()) if not sp.is_unknown(i)]
            for k in range(100):
                local = [rng.choice(pool) for _ in range(rng.randint(1, 30))]
                while sp.id_to_piece(local[0]) == SPACE:  # see docs/NEMO.md: SentencePiece versions differ there
                    local[0] = rng.choice(pool)
                text = sp.decode(local)
                nemo = "".join(sp.id_to_piece(i) for i in local).replace(SPACE, " ").strip(" ")
                assert text.strip(" ") == nemo, (text, nemo)
                lines.append(f"D {','.join(str(offsets[b] + i) for i in local)} {hexs(text.strip(' '))}")
    else:
        sp = blocks[0][1]
        n = sp.get_piece_size()
        text_pool = [i for i in range(n) if not is_special(sp.id_to_piece(i))]
        first_pool = [i for i in text_pool if not sp.is_byte(i) and not sp.is_unknown(i) and sp.id_to_piece(i) != SPACE]
        byte_ids = [i for i in range(n) if sp.is_byte(i)]
        for k in range(400):
            ids = [rng.choice(first_pool)]
            for _ in range(rng.randint(0, 40)):
                r = rng.random()
                if r < 0.15:
                    ids.append(rng.randrange(n))       # anything, specials included (dropped)
                elif r < 0.3 and byte_ids:
                    ids.append(rng.choice(byte_ids))  # byte pieces, valid UTF-8 or not
                else:
                    ids.append(rng.choice(text_pool))
            keep = [i for i in ids if not is_special(sp.id_to_piece(i))]
            lines.append(f"D {','.join(map(str, ids))} {hexs(sp.decode(keep).strip(' '))}")
        # multi-byte characters as byte pieces
        for word in ["é", "naïve café", "Ωμέγα", "日本語", "€100"]:
            ids = [sp.piece_to_id(f"<0x{b:02X}>") for b in word.encode("utf-8")]
            lines.append(f"D {','.join(map(str, ids))} {hexs(sp.decode(ids).strip(' '))}")
    # encoding: texts that NFKC leaves unchanged (the normalizer's character map is not applied)
    for b, (name, sp) in enumerate(blocks):
        if agg and name == "spl_tokens":
            continue
        n = sp.get_piece_size()
        pool = [i for i in range(n) if sp.id_to_piece(i) not in ("<unk>",) and not is_special(sp.id_to_piece(i))
                and not sp.is_byte(i)]
        count = 0
        while count < 150:
            text = sp.decode([rng.choice(pool) for _ in range(rng.randint(1, 25))])
            if rng.random() < 0.3:
                text = "  " + text.replace(" ", "   ") + " "
            if rng.random() < 0.1:
                text += " ☃ x"  # not in the vocabulary: <unk> or byte fallback
            if unicodedata.normalize("NFKC", text) != text:
                continue
            ids = [offsets[b] + i for i in sp.encode(text)]
            lines.append(f"E {name or '-'} {hexs(text)} {','.join(map(str, ids)) or '-'}")
            count += 1
    if not agg:
        sp = blocks[0][1]
        prompt = "<|startofcontext|><|startoftranscript|><|emo:undefined|><|de|><|en|><|nopnc|><|itn|><|timestamp|><|nodiarize|>"
        lines.append(f"P {','.join(map(str, sp.encode(prompt)))}")
    with open(os.path.join(OUT, f"tok_{layout}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
open(os.path.join(OUT, "TOK_DONE"), "w").write("ok\n")
