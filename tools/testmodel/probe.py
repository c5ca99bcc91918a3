"""A plain PyTorch forward of the encoder (spec §4) and decoder (spec §5), used only to calibrate
the EOS bias on greedy trajectories. Not the reference implementation (tests/reference is): no
masking or batching, one unpadded utterance at a time."""
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


def _conformer_layer(sd, p, x, heads):
    T, d = x.shape
    dk = d // heads

    def ff(y, f):
        y = _ln(y, sd, p + "norm_" + f)
        w1, b1 = sd[p + f + ".linear1.weight"], sd.get(p + f + ".linear1.bias")
        w2, b2 = sd[p + f + ".linear2.weight"], sd.get(p + f + ".linear2.bias")
        return torch.nn.functional.linear(torch.nn.functional.silu(
            torch.nn.functional.linear(y, w1, b1)), w2, b2)

    x = x + 0.5 * ff(x, "feed_forward1")
    # relative-position self-attention; row j of the table is relative position T-1-j
    y = _ln(x, sd, p + "norm_self_att")
    a = p + "self_attn."
    lin = lambda t, n: torch.nn.functional.linear(t, sd[a + n + ".weight"], sd.get(a + n + ".bias"))
    q, k, v = (lin(y, n).view(T, heads, dk).transpose(0, 1) for n in ("linear_q", "linear_k", "linear_v"))
    rel = torch.arange(T - 1, -T, -1, dtype=torch.float32)[:, None]
    omega = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float32) / d)
    pe = torch.zeros(2 * T - 1, d)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(rel * omega), torch.cos(rel * omega)
    pos = lin(pe, "linear_pos").view(2 * T - 1, heads, dk).transpose(0, 1)
    ac = (q + sd[a + "pos_bias_u"][:, None]) @ k.transpose(1, 2)
    bd_raw = (q + sd[a + "pos_bias_v"][:, None]) @ pos.transpose(1, 2)  # [h, T, 2T-1]
    idx = (T - 1) - torch.arange(T)[:, None] + torch.arange(T)[None, :]
    bd = torch.gather(bd_raw, 2, idx[None].expand(heads, T, T))
    att = torch.softmax((ac + bd) / math.sqrt(dk), -1) @ v
    x = x + lin(att.transpose(0, 1).reshape(T, d), "linear_out")
    # convolution module, BatchNorm in eval mode
    c = p + "conv."
    y = _ln(x, sd, p + "norm_conv").t()[None]
    y = torch.nn.functional.conv1d(y, sd[c + "pointwise_conv1.weight"], sd.get(c + "pointwise_conv1.bias"))
    y = torch.nn.functional.glu(y, dim=1)
    kw = sd[c + "depthwise_conv.weight"]
    y = torch.nn.functional.conv1d(y, kw, sd.get(c + "depthwise_conv.bias"),
                                   padding=(kw.shape[-1] - 1) // 2, groups=d)
    bn = c + "batch_norm."
    y = torch.nn.functional.batch_norm(y, sd[bn + "running_mean"], sd[bn + "running_var"],
                                       sd[bn + "weight"], sd[bn + "bias"], False, 0.0, 1e-5)
    y = torch.nn.functional.conv1d(torch.nn.functional.silu(y), sd[c + "pointwise_conv2.weight"],
                                   sd.get(c + "pointwise_conv2.bias"))
    x = x + y[0].t()
    x = x + 0.5 * ff(x, "feed_forward2")
    return _ln(x, sd, p + "norm_out")


def encode(sd, feats, n_layers, heads):
    """feats [128, T_f] -> encoder output [ceil(T_f/8), d] (dw_striding x8, no xscaling)."""
    pc = "encoder.pre_encode.conv."
    ch = sd[pc + "0.weight"].shape[0]
    y = torch.nn.functional.conv2d(feats.t()[None, None], sd[pc + "0.weight"], sd[pc + "0.bias"], 2, 1)
    for i in (2, 5):
        y = torch.relu(y)
        y = torch.nn.functional.conv2d(y, sd[pc + f"{i}.weight"], sd[pc + f"{i}.bias"], 2, 1, groups=ch)
        y = torch.nn.functional.conv2d(y, sd[pc + f"{i + 1}.weight"], sd[pc + f"{i + 1}.bias"])
    y = torch.relu(y)[0]  # [C, T, F/8]
    x = _lin(y.transpose(0, 1).reshape(y.shape[1], -1), sd, "encoder.pre_encode.out")
    for i in range(n_layers):
        x = _conformer_layer(sd, f"encoder.layers.{i}.", x, heads)
    return x


def speechlike(seconds, g, sr=16000):
    """Syllable-rate amplitude-modulated harmonic tones with a gliding pitch, plus noise bursts."""
    n = int(seconds * sr)
    t = torch.arange(n, dtype=torch.float64) / sr
    f0 = 100 + 80 * torch.rand(1, generator=g, dtype=torch.float64)
    glide = 1 + 0.2 * torch.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * torch.cumsum(f0 * glide, 0) / sr
    x = sum(torch.sin(k * phase) / k for k in range(1, 12))
    env = 0.5 + 0.5 * torch.sin(2 * math.pi * 4.0 * t + 6 * torch.rand(1, generator=g, dtype=torch.float64))
    x = x * env + 0.3 * torch.randn(n, generator=g, dtype=torch.float64) * (env < 0.2)
    return (0.3 * x / x.abs().max()).float()


def log_mel(sd, audio):
    """NeMo's front end in its >= 2.5 form (spec §3.3): pre-emphasis, centred zero-padded STFT with
    the stored window, stored mel filterbank, log(x + 2^-24), per-feature normalisation."""
    x = torch.cat([audio[:1], audio[1:] - 0.97 * audio[:-1]])
    win = torch.nn.functional.pad(sd["preprocessor.featurizer.window"], (56, 56))
    spec = torch.stft(x, 512, 160, 512, win, center=True, pad_mode="constant", return_complex=True)
    mel = sd["preprocessor.featurizer.fb"][0] @ spec.abs().pow(2)
    feats = torch.log(mel + 2.0 ** -24)[:, : len(audio) // 160]
    return (feats - feats.mean(1, keepdim=True)) / (feats.std(1, keepdim=True) + 1e-5)


@torch.no_grad()
def eos_gaps(model, prompt, eos_id, dims, seed, n_utts=8, steps=32):
    """Greedy trajectories (EOS excluded) on the model's own encoder output for synthetic
    speech-like audio of 1-4 s; per step, how far the EOS logit is below the best other logit.
    With an EOS bias of delta a trajectory stops at the first step whose gap is < delta, so the
    gaps give the length distribution for any delta exactly."""
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    gaps = []
    for u in range(n_utts):
        feats = log_mel(sd, speechlike(1.0 + 0.4 * u, g))
        enc = encode(sd, feats, dims["enc_layers"], dims["enc_heads"])
        if "encoder_decoder_proj.weight" in sd:
            enc = _lin(enc, sd, "encoder_decoder_proj")
        ids = list(prompt)
        row = []
        for _ in range(steps):
            h = final_states(sd, torch.tensor(ids), enc, dims["dec_layers"], dims["dec_heads"])[-1]
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
