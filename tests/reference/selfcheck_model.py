#!/usr/bin/python3
"""Self-checks of canary_ref.model / decoding against independent formulations:

  rel_shift       hand-computed 3x5 case; NeMo's pad/reshape (Transformer-XL) form == direct gather
  rel-pos attn    == a per-(i, j) loop over relative positions i - j
  decoder MHA     == torch.nn.MultiheadAttention with the same weights (NeMo's dk^-1/4 split scale)
  BatchNorm       == torch.nn.BatchNorm1d in eval mode
  subsampling     == torch.nn.Conv2d stack (unmasked); masked output on valid frames of a padded item
                     == the item alone (nemo-2.5), and the unmasked one differs (nemo-2.4 leak)
  encoder batch   padded batch item == item alone on valid frames (nemo-2.5)
  decoder cache   incremental decoding with the cache == full causal recomputation
  beam 1          == greedy with true positions (same argmax path)
"""
import math
import os
import sys

import torch
import torch.nn.functional as Fn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from canary_ref import decoding as D  # noqa: E402
from canary_ref import model as M  # noqa: E402
from canary_ref import synthetic  # noqa: E402

failures = []


def check(name, got, want, atol):
    got, want = torch.as_tensor(got).double(), torch.as_tensor(want).double()
    if got.shape != want.shape:
        print(f"FAIL {name}: shape {tuple(got.shape)} vs {tuple(want.shape)}")
        failures.append(name)
        return
    err = float((got - want).abs().max()) if got.numel() else 0.0
    ok = err <= atol
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max abs err {err:.3g}")
    if not ok:
        failures.append(f"{name}: {err:.3g} > {atol}")


def main():
    torch.manual_seed(0)
    dt = torch.float64

    # rel_shift: T = 3, table rows m = 0..4 hold relative positions 2, 1, 0, -1, -2.
    # Put B_raw[i, m] = 10*i + m; then B[i, j] = B_raw[i, 2 - i + j]:
    #   i=0: m = 2,3,4 -> 2, 3, 4      i=1: m = 1,2,3 -> 11,12,13     i=2: m = 0,1,2 -> 20,21,22
    raw = torch.tensor([[10.0 * i + m for m in range(5)] for i in range(3)], dtype=dt)[None, None]
    want = torch.tensor([[2, 3, 4], [11, 12, 13], [20, 21, 22]], dtype=dt)[None, None]
    check("rel_shift hand case (gather)", M.rel_shift_index(raw), want, 0)
    check("rel_shift hand case (NeMo pad/reshape)", M.rel_shift_xl(raw), want, 0)
    rnd = torch.randn(2, 3, 7, 13, dtype=dt)
    check("rel_shift gather == pad/reshape (T=7)", M.rel_shift_index(rnd), M.rel_shift_xl(rnd), 0)

    sd = synthetic.make_state_dict(seed=1, d_enc=32, enc_layers=2, enc_heads=4, sub_ch=8, d_dec=24,
                                   dec_layers=2, dec_heads=4, vocab=40, max_seq=64)
    H = 4

    # Rel-pos attention against an explicit loop.
    T, d = 6, 32
    x = torch.randn(1, T, d, dtype=dt)
    pos = M.rel_pos_table(T, d, dt)
    mask = torch.zeros(1, T, T, dtype=torch.bool)
    mask[:, :, 5:] = True
    mask[:, 5:, :] = True
    p = "encoder.layers.0.self_attn."
    got = M.rel_pos_attention(sd, p, x, pos, mask, H)
    dk = d // H
    q = (x[0] @ sd[p + "linear_q.weight"].T + sd[p + "linear_q.bias"]).view(T, H, dk)
    k = (x[0] @ sd[p + "linear_k.weight"].T + sd[p + "linear_k.bias"]).view(T, H, dk)
    v = (x[0] @ sd[p + "linear_v.weight"].T + sd[p + "linear_v.bias"]).view(T, H, dk)
    out = torch.zeros(T, H, dk, dtype=dt)
    for h in range(H):
        s = torch.zeros(T, T, dtype=dt)
        for i in range(T):
            for j in range(T):
                rel = i - j
                pe = torch.zeros(d, dtype=dt)
                for c in range(0, d, 2):
                    w = math.exp(-c * math.log(10000.0) / d)
                    pe[c], pe[c + 1] = math.sin(rel * w), math.cos(rel * w)
                pr = (pe @ sd[p + "linear_pos.weight"].T).view(H, dk)[h]
                s[i, j] = ((q[i, h] + sd[p + "pos_bias_u"][h]) @ k[j, h] + (q[i, h] + sd[p + "pos_bias_v"][h]) @ pr)
        s = s / math.sqrt(dk)
        s = s.masked_fill(mask[0], -10000.0)
        a = torch.softmax(s, -1).masked_fill(mask[0], 0.0)
        out[:, h] = a @ v[:, h]
    want = out.reshape(T, d) @ sd[p + "linear_out.weight"].T + sd[p + "linear_out.bias"]
    check("rel-pos attention == explicit loop", got[0], want, 1e-6)  # table built in fp32 like NeMo
    if float(got[0, 5:].sub(sd[p + "linear_out.bias"]).abs().max()) != 0.0:
        failures.append("fully masked query rows must give zero attention (output == linear_out bias)")

    # Decoder attention vs nn.MultiheadAttention.
    dd = 24
    pfx = "transf_decoder._decoder.layers.0.second_sub_layer."
    mha = torch.nn.MultiheadAttention(dd, H, batch_first=True, dtype=dt)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([sd[pfx + n + ".weight"] for n in ("query_net", "key_net", "value_net")]))
        mha.in_proj_bias.copy_(torch.cat([sd[pfx + n + ".bias"] for n in ("query_net", "key_net", "value_net")]))
        mha.out_proj.weight.copy_(sd[pfx + "out_projection.weight"])
        mha.out_proj.bias.copy_(sd[pfx + "out_projection.bias"])
    qx, kvx = torch.randn(2, 5, dd, dtype=dt), torch.randn(2, 9, dd, dtype=dt)
    kpm = torch.zeros(2, 9, dtype=torch.bool)
    kpm[1, 6:] = True
    want, _ = mha(qx, kvx, kvx, key_padding_mask=kpm, need_weights=False)
    add = (kpm.to(dt) * -10000.0)[:, None, None, :]
    check("decoder MHA == nn.MultiheadAttention", M.mha(sd, pfx, qx, kvx, add, H), want, 1e-10)

    # BatchNorm (eval) inside the conv module vs nn.BatchNorm1d.
    c = "encoder.layers.0.conv."
    y = torch.randn(2, 32, 11, dtype=dt)
    bn = torch.nn.BatchNorm1d(32, dtype=dt).eval()
    with torch.no_grad():
        for n in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, n).copy_(sd[c + "batch_norm." + n])
    xx = torch.randn(2, 11, 32, dtype=dt)
    pm = torch.zeros(2, 11, dtype=torch.bool)
    got = M.conv_module(sd, c, xx, pm)
    z = Fn.glu(Fn.conv1d(xx.transpose(1, 2), sd[c + "pointwise_conv1.weight"], sd[c + "pointwise_conv1.bias"]), 1)
    z = Fn.conv1d(z, sd[c + "depthwise_conv.weight"], sd[c + "depthwise_conv.bias"], padding=4, groups=32)
    z = bn(z)
    z = Fn.silu(z)
    z = Fn.conv1d(z, sd[c + "pointwise_conv2.weight"], sd[c + "pointwise_conv2.bias"]).transpose(1, 2)
    check("conv module == BatchNorm1d/SiLU modules", got, z, 1e-10)

    # Subsampling vs an nn.Conv2d stack, unmasked.
    feats = torch.randn(1, 128, 83, dtype=dt)
    seq = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, 2, 1, dtype=dt), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, 2, 1, groups=8, dtype=dt), torch.nn.Conv2d(8, 8, 1, dtype=dt), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, 2, 1, groups=8, dtype=dt), torch.nn.Conv2d(8, 8, 1, dtype=dt), torch.nn.ReLU())
    with torch.no_grad():
        for i, mod in enumerate(seq):
            if isinstance(mod, torch.nn.Conv2d):
                mod.weight.copy_(sd[f"encoder.pre_encode.conv.{i}.weight"])
                mod.bias.copy_(sd[f"encoder.pre_encode.conv.{i}.bias"])
        h = seq(feats.transpose(1, 2).unsqueeze(1))
        b_, c_, t_, f_ = h.shape
        want = Fn.linear(h.transpose(1, 2).reshape(b_, t_, c_ * f_), sd["encoder.pre_encode.out.weight"],
                         sd["encoder.pre_encode.out.bias"])
    got, glen = M.subsampling(sd, feats, [83], masked=False)
    check("subsampling == nn.Conv2d stack", got, want, 1e-10)
    if glen.tolist() != [11] or got.shape[1] != 11:
        failures.append(f"subsampled length of 83 frames: {glen.tolist()} / {got.shape[1]}, expected 11")
    if M.subsampled_lengths([0, 1, 8, 9, 1000, 1001]).tolist() != [0, 1, 1, 2, 125, 126]:
        failures.append("subsampled_lengths table")

    # Masked subsampling / encoder: a padded item equals the same item alone (nemo-2.5 semantics).
    fa = torch.randn(1, 128, 83, dtype=dt)
    batch = torch.zeros(2, 128, 120, dtype=dt)
    batch[0, :, :83] = fa[0]
    batch[1] = torch.randn(128, 120, dtype=dt)
    got, glen = M.subsampling(sd, batch, [83, 120], masked=True)
    alone, _ = M.subsampling(sd, fa, [83], masked=True)
    check("masked subsampling: padded item == alone", got[0, :11], alone[0], 1e-10)
    leak, _ = M.subsampling(sd, torch.cat([fa, torch.ones(1, 128, 37, dtype=dt)], 2), [83], masked=False)
    if float((leak[0, :11] - alone[0]).abs().max()) < 1e-6:
        failures.append("unmasked subsampling should leak padding into the last valid frame")
    taps = {}
    enc_b, elen = M.encoder(sd, batch, torch.tensor([83, 120]), H, True, taps=taps)
    enc_a, _ = M.encoder(sd, fa, torch.tensor([83]), H, True)
    check("encoder (masked): padded item == alone", enc_b[0, :11], enc_a[0], 1e-9)
    if sorted(taps) != ["enc_layer_0", "enc_layer_1", "encoder_out", "subsampling"]:
        failures.append(f"taps {sorted(taps)}")

    # Decoder: cached incremental steps == one causal pass over the whole sequence.
    enc = enc_b
    emask = torch.arange(enc.shape[1])[None] < elen[:, None]
    ids = torch.tensor([[4, 7, 9, 11, 3, 20, 21], [4, 7, 9, 11, 30, 31, 5]])
    full_lp = []
    for L in range(4, ids.shape[1] + 1):
        lp, _ = M.decoder_step(sd, ids[:, :L], 0, M.DecoderState(), enc, emask, H, pad_id=2)
        full_lp.append(lp)
    lp, st = M.decoder_step(sd, ids[:, :4], 0, M.DecoderState(), enc, emask, H, pad_id=2)
    inc = [lp]
    for L in range(4, ids.shape[1]):
        lp, st = M.decoder_step(sd, ids[:, L:L + 1], L, st, enc, emask, H, pad_id=2)
        inc.append(lp)
    check("decoder cache == full causal recomputation", torch.stack(inc), torch.stack(full_lp), 1e-10)
    check("log-probs normalised", torch.stack(inc).exp().sum(-1), torch.ones(len(inc), 2, dtype=dt), 1e-10)

    # Beam 1 == true-position greedy; beam 4 score >= beam 1 score (both via the reference path).
    prompt = torch.tensor([[4, 7, 9, 11]] * 2)
    b1, _ = D.beam_search(sd, enc, emask, prompt, H, eos=3, pad=2, max_seq_len=30, beam_size=1)
    tp = []
    for b in range(2):
        seq = prompt[b:b + 1]
        lp, st = M.decoder_step(sd, seq, 0, M.DecoderState(), enc[b:b + 1], emask[b:b + 1], H, 2)
        out = []
        for i in range(4, 4 + 26 + 1):
            t = int(lp.argmax())
            out.append(t)
            # NeMo's rule: an EOS from the prompt step does not end the search, a later one does.
            if (t == 3 and i > 4) or i == 4 + 26:
                break
            lp, st = M.decoder_step(sd, torch.tensor([[t]]), i, st, enc[b:b + 1], emask[b:b + 1], H, 2)
        while out and out[-1] in (2, 3):
            out.pop()
        tp.append(out)
    if b1 != tp:
        failures.append(f"beam 1 {b1} != true-position greedy {tp}")
    else:
        print(f"ok   beam 1 == true-position greedy ({[len(x) for x in b1]} tokens)")

    def score(b, toks):
        seq = torch.tensor([[4, 7, 9, 11] + toks + [3]])
        total = 0.0
        for L in range(4, seq.shape[1]):
            lp, _ = M.decoder_step(sd, seq[:, :L], 0, M.DecoderState(), enc[b:b + 1], emask[b:b + 1], H, 2)
            total += float(lp[0, seq[0, L]])
        return total
    b4, _ = D.beam_search(sd, enc, emask, prompt, H, eos=3, pad=2, max_seq_len=30, beam_size=4)
    for b in range(2):
        # Only comparable when both hypotheses ended with EOS inside the limit.
        if len(b4[b]) < 25 and len(b1[b]) < 25 and score(b, b4[b]) < score(b, b1[b]) - 1e-9:
            failures.append(f"item {b}: beam 4 hypothesis scores below beam 1")
    # Batched beam == per-item beam (our batched semantics; see docs/REFERENCE.md).
    one, _ = D.beam_search(sd, enc[1:], emask[1:], prompt[1:], H, eos=3, pad=2, max_seq_len=30, beam_size=4)
    if one[0] != b4[1]:
        failures.append(f"batched beam 4 item 1 {b4[1]} != alone {one[0]}")
    else:
        print("ok   batched beam 4 == per-item beam 4")

    if failures:
        print("\n".join(["FAILED:"] + failures))
        return 1
    print("model self-check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
