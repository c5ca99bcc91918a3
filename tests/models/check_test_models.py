#!/usr/bin/python3
"""Checks the tiny models written by tools/make-test-model against NeMo's format, independently of
the generator's own code: expected keys/shapes are derived here from model_config.yaml using the
key inventory of NeMo's modules (research spec §4.2, §4.5-4.7, §5.1-5.7), special-token ids from
the spec tables (§6.3, §6.4).

usage: check_test_models.py MODELS_DIR GENERATOR
"""
import hashlib
import io
import math
import os
import re
import struct
import subprocess
import sys
import tarfile
import tempfile
import unittest
import zipfile

import sentencepiece as spm
import torch
import yaml

MODELS, GENERATOR = sys.argv[1], sys.argv[2]
LAYOUTS = ["canary-180m-flash", "canary-1b-flash", "canary-1b", "canary-1b-v2"]
ARTIFACT = re.compile(r"^[0-9a-f]{32}_(tokenizer\.model|tokenizer\.vocab|vocab\.txt)$")

CANARY2_IDS = {"<unk>": 0, "<|nospeech|>": 1, "<pad>": 2, "<|endoftext|>": 3,
               "<|startoftranscript|>": 4, "<|pnc|>": 5, "<|nopnc|>": 6, "<|startofcontext|>": 7,
               "<|itn|>": 8, "<|noitn|>": 9, "<|timestamp|>": 10, "<|notimestamp|>": 11,
               "<|diarize|>": 12, "<|nodiarize|>": 13, "<|spkchange|>": 14,
               "<|audioseparator|>": 15, "<|emo:undefined|>": 16, "<|emo:neutral|>": 17,
               "<|emo:angry|>": 20, "<|unklang|>": 21, "<|en|>": 62, "<|fr|>": 69, "<|de|>": 76,
               "<|es|>": 169, "<|0|>": 205, "<|899|>": 1104, "<|spk0|>": 1105, "<|spk15|>": 1120,
               "<|spltoken0|>": 1121, "<|spltoken29|>": 1150, "\u2581": 1151}
CANARY1_IDS = {"<unk>": 0, "<pad>": 1, "<|endoftext|>": 2, "<|startoftranscript|>": 3, "<|en|>": 4,
               "<|de|>": 5, "<|es|>": 6, "<|fr|>": 7, "<|transcribe|>": 8, "<|translate|>": 9,
               "<|nopnc|>": 10, "<|pnc|>": 11, "<|nospeech|>": 12, "<|spltoken0|>": 13,
               "<|spltoken17|>": 30, "\u2581": 31}


def conformer_keys(prefix, enc, use_bias):
    d, ch, h = enc["d_model"], enc["subsampling_conv_channels"], enc["n_heads"]
    ff = d * enc["ff_expansion_factor"]
    k = enc["conv_kernel_size"]
    out = {}
    p = prefix + "pre_encode."
    out[p + "conv.0.weight"], out[p + "conv.0.bias"] = (ch, 1, 3, 3), (ch,)
    for i in (2, 5):
        out[p + f"conv.{i}.weight"], out[p + f"conv.{i}.bias"] = (ch, 1, 3, 3), (ch,)
        out[p + f"conv.{i + 1}.weight"], out[p + f"conv.{i + 1}.bias"] = (ch, ch, 1, 1), (ch,)
    out[p + "out.weight"], out[p + "out.bias"] = (d, ch * enc["feat_in"] // 8), (d,)

    def lin(name, o, i, bias=use_bias):
        out[name + ".weight"] = (o, i)
        if bias:
            out[name + ".bias"] = (o,)

    for n in range(enc["n_layers"]):
        L = f"{prefix}layers.{n}."
        for ln in ("norm_feed_forward1", "norm_conv", "norm_self_att", "norm_feed_forward2", "norm_out"):
            out[L + ln + ".weight"] = out[L + ln + ".bias"] = (d,)
        for f in ("feed_forward1", "feed_forward2"):
            lin(L + f + ".linear1", ff, d)
            lin(L + f + ".linear2", d, ff)
        for q in ("linear_q", "linear_k", "linear_v", "linear_out"):
            lin(L + "self_attn." + q, d, d)
        lin(L + "self_attn.linear_pos", d, d, bias=False)
        out[L + "self_attn.pos_bias_u"] = out[L + "self_attn.pos_bias_v"] = (h, d // h)
        c = L + "conv."
        out[c + "pointwise_conv1.weight"] = (2 * d, d, 1)
        out[c + "depthwise_conv.weight"] = (d, 1, k)
        out[c + "pointwise_conv2.weight"] = (d, d, 1)
        if use_bias:
            out[c + "pointwise_conv1.bias"] = (2 * d,)
            out[c + "depthwise_conv.bias"] = out[c + "pointwise_conv2.bias"] = (d,)
        for b in ("weight", "bias", "running_mean", "running_var"):
            out[c + "batch_norm." + b] = (d,)
        out[c + "batch_norm.num_batches_tracked"] = ()
    return out


def expected_aed_keys(cfg):
    out = {"preprocessor.featurizer.window": (400,), "preprocessor.featurizer.fb": (1, 128, 257)}
    out.update(conformer_keys("encoder.", cfg["encoder"], cfg["encoder"].get("use_bias", True)))
    de, dd = cfg["model_defaults"]["asr_enc_hidden"], cfg["model_defaults"]["lm_dec_hidden"]
    if de != dd:
        out["encoder_decoder_proj.weight"], out["encoder_decoder_proj.bias"] = (dd, de), (dd,)
    td = cfg["transf_decoder"]["config_dict"]
    V, H, I = td["vocab_size"], td["hidden_size"], td["inner_size"]
    e = "transf_decoder._embedding."
    out[e + "token_embedding.weight"] = (V, H)
    out[e + "position_embedding.pos_enc"] = (td["max_sequence_length"], H)
    out[e + "layer_norm.weight"] = out[e + "layer_norm.bias"] = (H,)
    for n in range(td["num_layers"]):
        L = f"transf_decoder._decoder.layers.{n}."
        for i in (1, 2, 3):
            out[L + f"layer_norm_{i}.weight"] = out[L + f"layer_norm_{i}.bias"] = (H,)
        for s in ("first_sub_layer", "second_sub_layer"):
            for q in ("query_net", "key_net", "value_net", "out_projection"):
                out[f"{L}{s}.{q}.weight"], out[f"{L}{s}.{q}.bias"] = (H, H), (H,)
        out[L + "third_sub_layer.dense_in.weight"], out[L + "third_sub_layer.dense_in.bias"] = (I, H), (I,)
        out[L + "third_sub_layer.dense_out.weight"], out[L + "third_sub_layer.dense_out.bias"] = (H, I), (H,)
    out["transf_decoder._decoder.final_layer_norm.weight"] = (H,)
    out["transf_decoder._decoder.final_layer_norm.bias"] = (H,)
    out["log_softmax.mlp.layer0.weight"], out["log_softmax.mlp.layer0.bias"] = (V, H), (V,)
    return out


def expected_ctc_keys(cfg):
    out = {"preprocessor.featurizer.window": (400,), "preprocessor.featurizer.fb": (1, 128, 257)}
    out.update(conformer_keys("encoder.", cfg["encoder"], cfg["encoder"]["use_bias"]))
    c = cfg["decoder"]["num_classes"] + 1  # + CTC blank
    out["decoder.decoder_layers.0.weight"] = (c, cfg["decoder"]["feat_in"], 1)
    out["decoder.decoder_layers.0.bias"] = (c,)
    return out


class Unpacked:
    def __init__(self, path):
        self.path = path
        self.tar = tarfile.open(path, "r:")
        self.members = self.tar.getmembers()
        self.files = {m.name[2:]: m for m in self.members if m.isfile()}

    def read(self, name):
        return self.tar.extractfile(self.files[name]).read()

    def yaml(self, name):
        return yaml.safe_load(self.read(name))

    def torch(self, name):
        return torch.load(io.BytesIO(self.read(name)), map_location="cpu")

    def spm(self, ref):
        assert ref.startswith("nemo:"), ref
        return spm.SentencePieceProcessor(model_proto=self.read(ref[5:]))


def tokenizer_refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, str) and v.startswith("nemo:"):
                yield v[5:]
            else:
                yield from tokenizer_refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from tokenizer_refs(v)


class TestModels(unittest.TestCase):
    def each(self):
        for name in LAYOUTS:
            path = os.path.join(MODELS, f"{name}-tiny.nemo")
            self.assertTrue(os.path.exists(path), path)
            m = Unpacked(path)
            try:
                yield name, m
            finally:
                m.tar.close()

    def test_tar_layout(self):
        for name, m in self.each():
            with open(m.path, "rb") as f:
                self.assertNotEqual(f.read(2), b"\x1f\x8b", "must be an uncompressed tar")
            self.assertEqual(m.members[0].name, ".")
            self.assertTrue(m.members[0].isdir())
            for mem in m.members[1:]:
                self.assertTrue(mem.name.startswith("./"), mem.name)
                self.assertTrue(mem.isfile(), mem.name)
            fixed = {"model_config.yaml", "model_weights.ckpt"}
            if name == "canary-1b-v2":
                fixed |= {"timestamps_asr_model_config.yaml", "timestamps_asr_model_weights.ckpt"}
            artifacts = set(m.files) - fixed
            self.assertTrue(fixed <= set(m.files), name)
            for a in artifacts:
                self.assertRegex(a, ARTIFACT)
            refs = set(tokenizer_refs(m.yaml("model_config.yaml")))
            if name == "canary-1b-v2":
                refs |= set(tokenizer_refs(m.yaml("timestamps_asr_model_config.yaml")))
            self.assertEqual(refs, artifacts, f"{name}: every artifact referenced exactly")
            # tar.add recursion order: sorted names
            names = [mem.name for mem in m.members[1:]]
            self.assertEqual(names, sorted(names))

    def test_checkpoint_zip(self):
        for name, m in self.each():
            ckpts = ["model_weights.ckpt"] + (["timestamps_asr_model_weights.ckpt"] if name == "canary-1b-v2" else [])
            for ck in ckpts:
                raw = m.read(ck)
                z = zipfile.ZipFile(io.BytesIO(raw))
                prefix = ck[:-5] + "/"
                for info in z.infolist():
                    self.assertTrue(info.filename.startswith(prefix), info.filename)
                    self.assertEqual(info.compress_type, zipfile.ZIP_STORED)
                    if "/data/" in info.filename:
                        # local header: 30 bytes + name + extra; data start is 64-byte aligned
                        off = info.header_offset
                        n, x = struct.unpack("<HH", raw[off + 26: off + 30])
                        self.assertEqual((off + 30 + n + x) % 64, 0, info.filename)
                self.assertIn(prefix + "data.pkl", z.namelist())

    def test_tensors(self):
        for name, m in self.each():
            cfg = m.yaml("model_config.yaml")
            sd = m.torch("model_weights.ckpt")
            exp = expected_aed_keys(cfg)
            self.assertEqual(set(sd), set(exp), name)
            for k, shape in exp.items():
                self.assertEqual(tuple(sd[k].shape), shape, k)
                want = torch.int64 if k.endswith("num_batches_tracked") else torch.float32
                self.assertEqual(sd[k].dtype, want, k)
                self.assertTrue(torch.isfinite(sd[k].float()).all(), k)
            self.assertTrue(hasattr(sd, "_metadata"))
            # tied embedding/head: one storage
            a, b = sd["transf_decoder._embedding.token_embedding.weight"], sd["log_softmax.mlp.layer0.weight"]
            self.assertEqual(a.storage().data_ptr(), b.storage().data_ptr())
            # fixed buffers as NeMo builds them
            H = a.shape[1]
            pe = sd["transf_decoder._embedding.position_embedding.pos_enc"].double()
            pos = torch.arange(pe.shape[0], dtype=torch.float64)[:, None]
            w = torch.exp(-math.log(10000.0) * torch.arange(0, H, 2, dtype=torch.float64) / H)
            ref = torch.zeros_like(pe)
            ref[:, 0::2], ref[:, 1::2] = torch.sin(pos * w), torch.cos(pos * w)
            self.assertLess(float((pe - ref / math.sqrt(H)).abs().max()), 1e-5)
            n = torch.arange(400, dtype=torch.float64)
            hann = 0.5 - 0.5 * torch.cos(2 * math.pi * n / 399)
            self.assertLess(float((sd["preprocessor.featurizer.window"].double() - hann).abs().max()), 1e-6)
            fb = sd["preprocessor.featurizer.fb"]
            self.assertTrue((fb >= 0).all() and (fb.sum(dim=2) > 0).all())
            for k, v in sd.items():
                if k.endswith("running_var"):
                    self.assertTrue((v > 0).all(), k)
            if name == "canary-1b-v2":
                ccfg = m.yaml("timestamps_asr_model_config.yaml")
                csd = m.torch("timestamps_asr_model_weights.ckpt")
                cexp = expected_ctc_keys(ccfg)
                self.assertEqual(set(csd), set(cexp))
                for k, shape in cexp.items():
                    self.assertEqual(tuple(csd[k].shape), shape, k)

    def test_manifest_matches_checkpoint(self):
        for name, m in self.each():
            sd = m.torch("model_weights.ckpt")
            with open(m.path + ".model_weights.tsv") as f:
                rows = [l.rstrip("\n").split("\t") for l in f]
            self.assertEqual([r[0] for r in rows], list(sd))
            for k, dt, shape, group, digest in rows:
                v = sd[k]
                self.assertEqual(hashlib.sha256(v.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest(), digest, k)

    def test_tokenizers(self):
        for name, m in self.each():
            cfg = m.yaml("model_config.yaml")
            tok = cfg["tokenizer"]
            rows = cfg["transf_decoder"]["config_dict"]["vocab_size"]
            self.assertEqual(cfg["head"]["num_classes"], rows)
            if tok["type"] == "agg":
                self.assertEqual(list(tok["langs"]), ["spl_tokens", "en", "de", "es", "fr"])
                self.assertEqual(tok["custom_tokenizer"]["_target_"],
                                 "nemo.collections.common.tokenizers.canary_tokenizer.CanaryTokenizer")
                spl = m.spm(tok["langs"]["spl_tokens"]["model_path"])
                table = CANARY1_IDS if cfg["prompt_format"] == "canary" else CANARY2_IDS
                self.assertEqual(spl.get_piece_size(), 32 if cfg["prompt_format"] == "canary" else 1152)
                for piece, i in table.items():
                    self.assertEqual(spl.id_to_piece(i), piece, f"{name} spl_tokens id {i}")
                total = 0
                for lang, sub in tok["langs"].items():
                    sp = m.spm(sub["model_path"])
                    total += sp.get_piece_size()
                    self.assertEqual(sp.id_to_piece(0), "<unk>")
                self.assertEqual(rows, 8 * math.ceil(total / 8))
            else:
                sp = m.spm(tok["model_path"])
                for piece in ("<|endoftext|>", "<|startoftranscript|>", "<|startofcontext|>", "<pad>",
                              "<|emo:undefined|>", "<|pnc|>", "<|noitn|>", "<|notimestamp|>", "<|nodiarize|>"):
                    self.assertNotEqual(sp.piece_to_id(piece), sp.unk_id(), piece)
                for lang in ("bg", "en", "de", "uk"):
                    self.assertNotEqual(sp.piece_to_id(f"<|{lang}|>"), sp.unk_id())
                self.assertEqual(rows, 8 * math.ceil(sp.get_piece_size() / 8))
                self.assertNotEqual(rows, sp.get_piece_size(), "tiny v2 exercises padding rows")
                self.assertTrue(sp.id_to_piece(sp.piece_to_id("<0xE2>")) == "<0xE2>")
                # byte fallback round-trip of text outside the training alphabet
                text = "Grüße — 你好"
                self.assertEqual(sp.decode(sp.encode(text)), text)

    def test_variants(self):
        base = os.path.join(MODELS, "canary-180m-flash-tiny")
        with open(base + "-gzip.nemo", "rb") as f:
            self.assertEqual(f.read(2), b"\x1f\x8b")
        plain = Unpacked(base + ".nemo")
        try:
            with tarfile.open(base + "-gzip.nemo", "r:gz") as gz:
                names = [m.name for m in gz.getmembers()]
                self.assertEqual(names, [m.name for m in plain.members])
                for n in plain.files:
                    self.assertEqual(gz.extractfile("./" + n).read(), plain.read(n), n)
            self.assertEqual(sorted(os.listdir(base + ".dir")), sorted(plain.files))
            for n in plain.files:
                with open(os.path.join(base + ".dir", n), "rb") as f:
                    self.assertEqual(f.read(), plain.read(n), n)
        finally:
            plain.tar.close()

    def test_reproducible_and_stamped(self):
        name = "canary-180m-flash"
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([sys.executable, GENERATOR, "--layout", name, "--out", d, "-q"], check=True)
            with open(os.path.join(d, f"{name}-tiny.nemo"), "rb") as a, \
                    open(os.path.join(MODELS, f"{name}-tiny.nemo"), "rb") as b:
                self.assertEqual(hashlib.sha256(a.read()).digest(), hashlib.sha256(b.read()).digest())
            r = subprocess.run([sys.executable, GENERATOR, "--layout", name, "--out", d],
                               check=True, capture_output=True, text=True)
            self.assertIn("up to date", r.stdout)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
