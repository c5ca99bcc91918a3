"""A plain PyTorch forward of the Transformer decoder (spec §5), used only to calibrate the EOS
bias on greedy trajectories. Not a reference implementation: tests/reference is."""
import math

import torch


def _ln(x, sd, p):
    return torch.nn.functional.layer_norm(x, x.shape[-1:], sd[p + ".weight"], sd[p + ".bias"], 1e-5)


def _lin(x, sd, p):
    return x @ sd[p + ".weight"].t() + sd[p + ".bias"]


def _mha(sd, p, q_in, kv_in, heads, causal):
    L, d = q_in.shape
    dk = d // heads
    q = _lin(q_in, sd, p + ".query_net").view(L, heads, dk).transpose(0, 1)
    k = _lin(kv_in, sd, p + ".key_net").view(-1, heads, dk).transpose(0, 1)
    v = _lin(kv_in, sd, p + ".value_net").view(-1, heads, dk).transpose(0, 1)
    s = q @ k.transpose(1, 2) / math.sqrt(dk)
    if causal:
        s = s + torch.triu(torch.full((L, L), -10000.0), 1)
    o = torch.softmax(s, -1) @ v
    return _lin(o.transpose(0, 1).reshape(L, d), sd, p + ".out_projection")


def final_states(sd, ids, enc, n_layers, heads):
    e = "transf_decoder._embedding."
    x = sd[e + "token_embedding.weight"][ids] + sd[e + "position_embedding.pos_enc"][: len(ids)]
    x = _ln(x, sd, e + "layer_norm")
    for i in range(n_layers):
        p = f"transf_decoder._decoder.layers.{i}."
        h = _ln(x, sd, p + "layer_norm_1")
        x = x + _mha(sd, p + "first_sub_layer", h, h, heads, True)
        x = x + _mha(sd, p + "second_sub_layer", _ln(x, sd, p + "layer_norm_2"), enc, heads, False)
        f = torch.relu(_lin(_ln(x, sd, p + "layer_norm_3"), sd, p + "third_sub_layer.dense_in"))
        x = x + _lin(f, sd, p + "third_sub_layer.dense_out")
    return _ln(x, sd, "transf_decoder._decoder.final_layer_norm")


@torch.no_grad()
def eos_gaps(model, prompt, eos_id, n_layers, heads, d_enc, seed, n_utts=6, steps=32, frames=24):
    """Greedy trajectories (EOS excluded) on random encoder states; per step, how far the EOS logit
    is below the best other logit. With an EOS bias of delta a trajectory stops at the first step
    whose gap is < delta, so the gaps give the length distribution for any delta exactly."""
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    gaps = []
    for _ in range(n_utts):
        enc = torch.randn(frames, d_enc, generator=g)
        if "encoder_decoder_proj.weight" in sd:
            enc = _lin(enc, sd, "encoder_decoder_proj")
        ids = list(prompt)
        row = []
        for _ in range(steps):
            h = final_states(sd, torch.tensor(ids), enc, n_layers, heads)[-1]
            logits = _lin(h, sd, "log_softmax.mlp.layer0")
            eos = float(logits[eos_id])
            logits[eos_id] = -float("inf")
            nxt = int(torch.argmax(logits))
            row.append(float(logits[nxt]) - eos)
            ids.append(nxt)
        gaps.append(row)
    return gaps


def lengths_for(gaps, delta):
    out = []
    for row in gaps:
        n = next((i for i, gp in enumerate(row) if gp < delta), len(row))
        out.append(n)
    return out
