"""Load a .nemo (tar with model_config.yaml, model_weights.ckpt, tokenizer artifacts) the plain way:
tarfile + yaml + torch.load + sentencepiece. This is deliberately independent of the C loader."""

import io
import re
import os
import tarfile

import sentencepiece as spm
import torch
import yaml


def _open_tar(path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return tarfile.open(path, "r:gz" if magic == b"\x1f\x8b" else "r:")


def _member_bytes(tar, basename):
    for m in tar.getmembers():
        if m.isfile() and os.path.basename(m.name) == basename:
            return tar.extractfile(m).read()
    raise FileNotFoundError(f"member {basename!r} not found in the .nemo archive")


def _artifact(tar, ref):
    if not isinstance(ref, str):
        raise ValueError(f"tokenizer artifact reference {ref!r} is not a string")
    name = ref[len("nemo:"):] if ref.startswith("nemo:") else os.path.basename(ref)
    return _member_bytes(tar, name)


class Tokenizer:
    """NeMo's tokenizer as inference sees it: either an aggregate of SentencePiece models (spl_tokens
    first, then one per language, in YAML order) or one unified SentencePiece model (canary-1b-v2)."""

    def __init__(self, tok_cfg, tar):
        self.kind = tok_cfg.get("type", "bpe")
        self.blocks = []  # (name, offset, SentencePieceProcessor)
        if self.kind == "agg":
            offset = 0
            for lang, sub in tok_cfg["langs"].items():
                sp = spm.SentencePieceProcessor(model_proto=_artifact(tar, sub["model_path"]))
                self.blocks.append((lang, offset, sp))
                offset += sp.get_piece_size()
        else:
            sp = spm.SentencePieceProcessor(model_proto=_artifact(tar, tok_cfg["model_path"]))
            self.blocks.append(("unified", 0, sp))
        self.vocab_size = sum(b[2].get_piece_size() for b in self.blocks)
        special = self.blocks[0][2]
        # Special tokens live in the spl_tokens block (agg) or in the unified model.
        self.special = {special.id_to_piece(i): i for i in range(special.get_piece_size())}
        self.eos = self.special_id("<|endoftext|>")
        self.bos = self.special_id("<|startoftranscript|>")
        self.pad = self.special_id("<pad>")

    def special_id(self, piece):
        if piece not in self.special:
            raise KeyError(f"special token {piece} is not in the tokenizer")
        return self.blocks[0][1] + self.special[piece]

    def block_of(self, i):
        for name, off, sp in reversed(self.blocks):
            if i >= off:
                return name, off, sp
        raise ValueError(i)

    def piece(self, i):
        _, off, sp = self.block_of(i)
        return sp.id_to_piece(i - off)

    def lang_block(self, lang):
        for name, off, sp in self.blocks:
            if name == lang:
                return off, sp
        raise KeyError(f"language {lang} has no sub-tokenizer")

    def ids_to_text(self, ids):
        """Detokenisation as NeMo does it, minus special tokens (spec §6.2, §6.5, §6.7): aggregate =
        concatenate the pieces and map '▁' to spaces; unified = SentencePiece decode. Ids whose piece is
        a special token '<|...|>' (or <pad>/<unk>) are dropped first, then the text is stripped."""
        keep = []
        for i in ids:
            if i >= self.vocab_size:
                continue  # head rows added to round the vocabulary up to a multiple of 8: no piece
            p = self.piece(i)
            if (p.startswith("<|") and p.endswith("|>")) or p in ("<pad>",):
                continue
            keep.append(i)
        if self.kind == "agg":
            return "".join(self.piece(i) for i in keep).replace("\u2581", " ").strip()
        return self.blocks[0][2].decode_ids(keep).strip()

    def timestamp_text(self, ids):
        """Text and words of a timestamp-mode output as NeMo's process_aed_timestamp_outputs makes them
        (spec §7.7): the aggregate text with special pieces verbatim, then every '<|S|> content <|E|>'
        match of a non-greedy regex gives a word (content stripped, empty ones dropped) at frames S..E;
        the text is the words joined by spaces, or the plain text when no match exists. Special
        pieces other than timestamps, and a lone timestamp, are dropped (our documented deviation:
        NeMo keeps them verbatim). Returns (text, [(word, S, E), ...])."""
        if sum(1 for i in ids if i < self.vocab_size and re.fullmatch(r"<\|\d+\|>", self.piece(i))) < 2:
            return self.ids_to_text(ids), []  # no group: a stray timestamp token is dropped too
        pieces = []
        for i in ids:
            if i >= self.vocab_size:
                continue
            p = self.piece(i)
            if re.fullmatch(r"<\|\d+\|>", p) or not ((p.startswith("<|") and p.endswith("|>")) or p == "<pad>"):
                pieces.append(p)
        text = "".join(pieces).replace("\u2581", " ").strip()
        words = []
        for m in re.finditer(r"<\|(\d+)\|>(.*?)<\|(\d+)\|>", text):
            content = m.group(2).strip()
            if content:
                words.append((content, int(m.group(1)), int(m.group(3))))
        return " ".join(w for w, _, _ in words), words


class NemoModel:
    def __init__(self, path, weights=True):
        self.path = path
        with _open_tar(path) as tar:
            self.config = yaml.safe_load(_member_bytes(tar, "model_config.yaml"))
            self.state = {}
            if weights:
                ckpt = _member_bytes(tar, "model_weights.ckpt")
                self.state = torch.load(io.BytesIO(ckpt), map_location="cpu")
            self.tokenizer = Tokenizer(self.config["tokenizer"], tar)

    def get(self, key):
        if key not in self.state:
            raise KeyError(f"{self.path}: tensor {key} missing from model_weights.ckpt")
        return self.state[key]
