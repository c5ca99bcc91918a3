#!/usr/bin/python3
"""Export the reference Canary model of a .nemo to ONNX, so onnxruntime can run the very same graph
and weights (CPU benchmarks, and an independent execution engine for parity checks).

Three graphs in --out (float32, dynamic batch/time):
  encoder.onnx      features [B, n_mels, T] f32, feature_lengths [B] i64
                    -> encoder_states [B, T', d_dec] (after encoder_decoder_proj), encoder_lengths [B] i64
  cross_kv.onnx     encoder_states -> cross_k, cross_v [n_layers, B, heads, T', dk]  (once per utterance)
  decoder_step.onnx input_ids [B, L] i64, start_pos [1] i64, past_k, past_v [n_layers, B, heads, P, dk]
                    (P may be 0), cross_k, cross_v, encoder_mask [B, T'] f32 (1 = valid frame)
                    -> log_probs [B, V] (last position), present_k, present_v [n_layers, B, heads, P+L, dk]
The KV cache holds self-attention keys/values of every past position (K = W_k LN1(h) + b_k), which is
equivalent to NeMo's cache of layer inputs (spec §5.4). Feature semantics (nemo-2.4 / nemo-2.5) only
change the subsampling masking in the encoder and are fixed at export time (--semantics).

  /usr/bin/python3 tests/reference/onnx/export_onnx.py MODEL.nemo --out DIR [--semantics nemo-2.5]
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as Fn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from canary_ref import model as M  # noqa: E402
from canary_ref.nemo import NemoModel  # noqa: E402

OPSET = 14


def _ln(x, sd, p):
    # normalized_shape from the weight: a constant, not a traced shape.
    return Fn.layer_norm(x, (int(sd[p + ".weight"].shape[0]),), sd[p + ".weight"], sd[p + ".bias"], 1e-5)


def _half(n):
    """Length after a kernel-3 stride-2 pad-1 conv, as an integer tensor op (0 stays 0)."""
    return torch.div(n - 1, 2, rounding_mode="floor") + 1


class Encoder(torch.nn.Module):
    def __init__(self, sd, n_heads, masked, xscaling):
        super().__init__()
        self.sd, self.h, self.masked, self.xscaling = sd, n_heads, masked, xscaling
        self.n_layers = M.encoder_layer_count(sd)
        self.d = int(sd["encoder.pre_encode.out.weight"].shape[0])

    def forward(self, features, feature_lengths):
        sd = self.sd
        x = features.transpose(1, 2).unsqueeze(1)
        cur = feature_lengths
        p = "encoder.pre_encode.conv."
        ch = int(sd[p + "0.weight"].shape[0])

        def mask(x, cur):
            if not self.masked:
                return x
            t = torch.arange(x.shape[2]).unsqueeze(0) < cur.unsqueeze(1)
            return x * t.unsqueeze(1).unsqueeze(3).to(x.dtype)

        for kind, idx, stride, groups in [("c", 0, 2, 1), ("r", 0, 0, 0), ("c", 2, 2, ch), ("c", 3, 1, 1),
                                          ("r", 0, 0, 0), ("c", 5, 2, ch), ("c", 6, 1, 1), ("r", 0, 0, 0)]:
            x = mask(x, cur)
            if kind == "r":
                x = torch.relu(x)
                continue
            w = sd[f"{p}{idx}.weight"]
            x = Fn.conv2d(x, w, sd[f"{p}{idx}.bias"], stride=stride, padding=(int(w.shape[-1]) - 1) // 2, groups=groups)
            if stride == 2:
                cur = _half(cur)
        x = mask(x, cur)
        B, C, T, Fq = x.shape
        x = x.transpose(1, 2).reshape(B, T, C * Fq)
        x = Fn.linear(x, sd["encoder.pre_encode.out.weight"], sd["encoder.pre_encode.out.bias"])
        d = self.d
        if self.xscaling:
            x = x * math.sqrt(d)
        # Relative positions T-1 .. -(T-1), interleaved sin/cos (spec §4.3).
        Tt = x.shape[1]
        pos = torch.arange(Tt - 1, -Tt, -1).to(torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, d, 2).to(torch.float32) * -(math.log(10000.0) / d))
        ang = pos * div
        pe = torch.stack([torch.sin(ang), torch.cos(ang)], dim=2).reshape(-1, d)
        valid = torch.arange(Tt).unsqueeze(0) < cur.unsqueeze(1)
        att_mask = ~(valid.unsqueeze(2) & valid.unsqueeze(1))
        pad_mask = ~valid
        for i in range(self.n_layers):
            x = self.layer(f"encoder.layers.{i}.", x, pe, att_mask, pad_mask)
        if "encoder_decoder_proj.weight" in sd:
            x = Fn.linear(x, sd["encoder_decoder_proj.weight"], sd["encoder_decoder_proj.bias"])
        return x, cur

    def attn(self, p, x, pe, att_mask):
        sd, H = self.sd, self.h
        B, T = x.shape[0], x.shape[1]
        d = self.d
        dk = d // H

        def heads(t):
            return t.reshape(t.shape[0], -1, H, dk).transpose(1, 2)

        q = heads(Fn.linear(x, sd[p + "linear_q.weight"], sd[p + "linear_q.bias"]))
        k = heads(Fn.linear(x, sd[p + "linear_k.weight"], sd[p + "linear_k.bias"]))
        v = heads(Fn.linear(x, sd[p + "linear_v.weight"], sd[p + "linear_v.bias"]))
        pp = heads(Fn.linear(pe.unsqueeze(0), sd[p + "linear_pos.weight"]))
        u = sd[p + "pos_bias_u"].unsqueeze(1)
        vb = sd[p + "pos_bias_v"].unsqueeze(1)
        ac = torch.matmul(q + u, k.transpose(2, 3))
        bd = M.rel_shift_xl(torch.matmul(q + vb, pp.transpose(2, 3)))
        s = (ac + bd) / math.sqrt(dk)
        m = att_mask.unsqueeze(1)
        s = s.masked_fill(m, M.MASK_VALUE)
        a = torch.softmax(s, dim=-1).masked_fill(m, 0.0)
        o = torch.matmul(a, v).transpose(1, 2).reshape(B, T, d)
        return Fn.linear(o, sd[p + "linear_out.weight"], sd[p + "linear_out.bias"])

    def conv(self, p, x, pad_mask):
        sd = self.sd
        y = Fn.conv1d(x.transpose(1, 2), sd[p + "pointwise_conv1.weight"], sd[p + "pointwise_conv1.bias"])
        y = Fn.glu(y, dim=1).masked_fill(pad_mask.unsqueeze(1), 0.0)
        # BatchNorm (running statistics) folded into the depthwise conv: exact in real arithmetic.
        bn = p + "batch_norm."
        scale = sd[bn + "weight"] / torch.sqrt(sd[bn + "running_var"] + 1e-5)
        w = sd[p + "depthwise_conv.weight"] * scale[:, None, None]
        b = (sd[p + "depthwise_conv.bias"] - sd[bn + "running_mean"]) * scale + sd[bn + "bias"]
        y = Fn.conv1d(y, w, b, padding=(int(w.shape[-1]) - 1) // 2, groups=int(w.shape[0]))
        y = y * torch.sigmoid(y)
        y = Fn.conv1d(y, sd[p + "pointwise_conv2.weight"], sd[p + "pointwise_conv2.bias"])
        return y.transpose(1, 2)

    def ff(self, p, x):
        sd = self.sd
        y = Fn.linear(x, sd[p + "linear1.weight"], sd[p + "linear1.bias"])
        return Fn.linear(y * torch.sigmoid(y), sd[p + "linear2.weight"], sd[p + "linear2.bias"])

    def layer(self, p, x, pe, att_mask, pad_mask):
        x = x + 0.5 * self.ff(p + "feed_forward1.", _ln(x, self.sd, p + "norm_feed_forward1"))
        x = x + self.attn(p + "self_attn.", _ln(x, self.sd, p + "norm_self_att"), pe, att_mask)
        x = x + self.conv(p + "conv.", _ln(x, self.sd, p + "norm_conv"), pad_mask)
        x = x + 0.5 * self.ff(p + "feed_forward2.", _ln(x, self.sd, p + "norm_feed_forward2"))
        return _ln(x, self.sd, p + "norm_out")


class CrossKV(torch.nn.Module):
    def __init__(self, sd, n_heads):
        super().__init__()
        self.sd, self.h = sd, n_heads
        self.n_layers = M.decoder_layer_count(sd)

    def forward(self, encoder_states):
        ks, vs = [], []
        for i in range(self.n_layers):
            k, v = M.cross_kv(self.sd, f"transf_decoder._decoder.layers.{i}.second_sub_layer.", encoder_states, self.h)
            ks.append(k)
            vs.append(v)
        return torch.stack(ks), torch.stack(vs)


class DecoderStep(torch.nn.Module):
    def __init__(self, sd, n_heads):
        super().__init__()
        self.sd, self.h = sd, n_heads
        self.n_layers = M.decoder_layer_count(sd)

    def forward(self, input_ids, start_pos, past_k, past_v, cross_k, cross_v, encoder_mask):
        sd, H = self.sd, self.h
        e = "transf_decoder._embedding."
        L = input_ids.shape[1]
        positions = start_pos + torch.arange(L)
        x = Fn.embedding(input_ids, sd[e + "token_embedding.weight"]) + \
            Fn.embedding(positions, sd[e + "position_embedding.pos_enc"]).unsqueeze(0)
        x = _ln(x, sd, e + "layer_norm")
        B = x.shape[0]
        d = int(sd[e + "token_embedding.weight"].shape[1])
        dk = d // H
        P = past_k.shape[3]
        # Query q (absolute index P+q) may see keys 0..P+q; masked scores get -10000 as in NeMo.
        allowed = torch.arange(P + L).unsqueeze(0) <= (P + torch.arange(L)).unsqueeze(1)
        self_bias = (~allowed).to(x.dtype) * M.MASK_VALUE
        cross_bias = ((1.0 - encoder_mask) * M.MASK_VALUE).unsqueeze(1).unsqueeze(2)
        scale = math.sqrt(math.sqrt(dk))

        def heads(t):
            return t.reshape(t.shape[0], -1, H, dk).transpose(1, 2)

        def attend(p, q_in, k, v, bias):
            q = heads(Fn.linear(q_in, sd[p + "query_net.weight"], sd[p + "query_net.bias"])) / scale
            s = torch.matmul(q, k.transpose(2, 3) / scale) + bias
            o = torch.matmul(torch.softmax(s, dim=-1), v).transpose(1, 2).reshape(B, -1, d)
            return Fn.linear(o, sd[p + "out_projection.weight"], sd[p + "out_projection.bias"])

        new_k, new_v = [], []
        h = x
        for i in range(self.n_layers):
            p = f"transf_decoder._decoder.layers.{i}."
            n1 = _ln(h, sd, p + "layer_norm_1")
            k = torch.cat([past_k[i], heads(Fn.linear(n1, sd[p + "first_sub_layer.key_net.weight"],
                                                      sd[p + "first_sub_layer.key_net.bias"]))], dim=2)
            v = torch.cat([past_v[i], heads(Fn.linear(n1, sd[p + "first_sub_layer.value_net.weight"],
                                                      sd[p + "first_sub_layer.value_net.bias"]))], dim=2)
            new_k.append(k)
            new_v.append(v)
            a = attend(p + "first_sub_layer.", n1, k, v, self_bias) + h
            c = attend(p + "second_sub_layer.", _ln(a, sd, p + "layer_norm_2"), cross_k[i], cross_v[i], cross_bias) + a
            f = Fn.linear(_ln(c, sd, p + "layer_norm_3"), sd[p + "third_sub_layer.dense_in.weight"],
                          sd[p + "third_sub_layer.dense_in.bias"])
            h = Fn.linear(torch.relu(f), sd[p + "third_sub_layer.dense_out.weight"],
                          sd[p + "third_sub_layer.dense_out.bias"]) + c
        h = _ln(h, sd, "transf_decoder._decoder.final_layer_norm")
        logits = Fn.linear(h[:, -1], sd["log_softmax.mlp.layer0.weight"], sd["log_softmax.mlp.layer0.bias"])
        return torch.log_softmax(logits, dim=-1), torch.stack(new_k), torch.stack(new_v)


def export(nemo_path, out_dir, semantics="nemo-2.5"):
    nm = NemoModel(nemo_path)
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in nm.state.items()}
    cfg = nm.config
    enc_h = int(cfg["encoder"]["n_heads"])
    dec_h = int(cfg["transf_decoder"]["config_dict"]["num_attention_heads"])
    os.makedirs(out_dir, exist_ok=True)
    n_mels = sd["preprocessor.featurizer.fb"].reshape(-1, sd["preprocessor.featurizer.fb"].shape[-1]).shape[0]
    enc = Encoder(sd, enc_h, semantics == "nemo-2.5", bool(cfg["encoder"].get("xscaling", False))).eval()
    cross = CrossKV(sd, dec_h).eval()
    step = DecoderStep(sd, dec_h).eval()
    n_dec = step.n_layers
    d_dec = sd["transf_decoder._embedding.token_embedding.weight"].shape[1]
    dk = d_dec // dec_h
    with torch.no_grad():
        feats = torch.randn(2, n_mels, 203)
        flen = torch.tensor([203, 150])
        torch.onnx.export(enc, (feats, flen), os.path.join(out_dir, "encoder.onnx"), opset_version=OPSET,
                          input_names=["features", "feature_lengths"],
                          output_names=["encoder_states", "encoder_lengths"],
                          dynamic_axes={"features": {0: "B", 2: "T"}, "feature_lengths": {0: "B"},
                                        "encoder_states": {0: "B", 1: "T_enc"}, "encoder_lengths": {0: "B"}})
        es, el = enc(feats, flen)
        torch.onnx.export(cross, (es,), os.path.join(out_dir, "cross_kv.onnx"), opset_version=OPSET,
                          input_names=["encoder_states"], output_names=["cross_k", "cross_v"],
                          dynamic_axes={"encoder_states": {0: "B", 1: "T_enc"}, "cross_k": {1: "B", 3: "T_enc"},
                                        "cross_v": {1: "B", 3: "T_enc"}})
        ck, cv = cross(es)
        emask = (torch.arange(es.shape[1])[None] < el[:, None]).float()
        ids = torch.tensor([[4, 5, 6], [4, 5, 6]])
        past = torch.zeros(n_dec, 2, dec_h, 2, dk)
        torch.onnx.export(step, (ids, torch.tensor([2]), past, past, ck, cv, emask),
                          os.path.join(out_dir, "decoder_step.onnx"), opset_version=OPSET,
                          input_names=["input_ids", "start_pos", "past_k", "past_v", "cross_k", "cross_v",
                                       "encoder_mask"],
                          output_names=["log_probs", "present_k", "present_v"],
                          dynamic_axes={"input_ids": {0: "B", 1: "L"}, "past_k": {1: "B", 3: "P"},
                                        "past_v": {1: "B", 3: "P"}, "cross_k": {1: "B", 3: "T_enc"},
                                        "cross_v": {1: "B", 3: "T_enc"}, "encoder_mask": {0: "B", 1: "T_enc"},
                                        "log_probs": {0: "B"}, "present_k": {1: "B", 3: "PL"},
                                        "present_v": {1: "B", 3: "PL"}})
    info = {"nemo": os.path.abspath(nemo_path), "semantics": semantics, "opset": OPSET, "n_mels": n_mels,
            "decoder_layers": n_dec, "decoder_heads": dec_h, "head_dim": dk, "d_dec": d_dec,
            "vocab": int(sd["log_softmax.mlp.layer0.weight"].shape[0]),
            "max_sequence_length": int(sd["transf_decoder._embedding.position_embedding.pos_enc"].shape[0])}
    with open(os.path.join(out_dir, "export.json"), "w") as f:
        json.dump(info, f, indent=1)
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("nemo")
    ap.add_argument("--out", required=True)
    ap.add_argument("--semantics", default="nemo-2.5", choices=["nemo-2.4", "nemo-2.5"])
    args = ap.parse_args()
    info = export(args.nemo, args.out, args.semantics)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
