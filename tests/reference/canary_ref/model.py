"""Canary model math (spec §4 FastConformer encoder, §5 Transformer decoder), written functionally
over a NeMo state dict so that every step is visible. Everything runs in the dtype of the weights
handed in (the goldens use float64; NeMo runs float32).
"""

import math

import torch
import torch.nn.functional as Fn

MASK_VALUE = -10000.0  # NeMo's INF_VAL / NEG_INF: masked scores get -10000, not -inf


def _lin(x, w, b=None):
    return Fn.linear(x, w, b)


def _ln(x, sd, prefix, eps=1e-5):
    return Fn.layer_norm(x, (x.shape[-1],), sd[prefix + ".weight"], sd[prefix + ".bias"], eps)


def swish(x):
    return x * torch.sigmoid(x)


# ---------------------------------------------------------------- subsampling (dw_striding, x8)


def conv_out_len(n):
    """Output length of a kernel-3, stride-2, padding-1 conv: floor((n + 2 - 3)/2) + 1."""
    return (n - 1) // 2 + 1 if n > 0 else 0


def subsampled_lengths(lengths, stages=3):
    out = []
    for n in lengths:
        n = int(n)
        for _ in range(stages):
            n = conv_out_len(n)
        out.append(n)
    return torch.tensor(out, dtype=torch.int64)


def subsampling(sd, feats, lengths, masked):
    """feats [B, F, T] -> ([B, T', d], lengths'). masked=True is NeMo >= 2.5 (MaskedConvSequential:
    zero the time steps past the valid length before every layer and after the last one)."""
    x = feats.transpose(1, 2).unsqueeze(1)  # [B, 1, T, F]: time is the H axis, frequency the W axis
    cur = torch.as_tensor(lengths, dtype=torch.int64).clone()
    p = "encoder.pre_encode.conv."
    channels = sd[p + "0.weight"].shape[0]

    def mask(x, cur):
        if not masked:
            return x
        t = torch.arange(x.shape[2])[None, :] < cur[:, None]
        return x * t[:, None, :, None].to(x.dtype)

    layers = [
        ("conv", 0, 2, 1), ("relu",), ("conv", 2, 2, channels), ("conv", 3, 1, 1), ("relu",),
        ("conv", 5, 2, channels), ("conv", 6, 1, 1), ("relu",),
    ]
    for layer in layers:
        x = mask(x, cur)
        if layer[0] == "relu":
            x = torch.relu(x)
            continue
        _, idx, stride, groups = layer
        w, b = sd[f"{p}{idx}.weight"], sd[f"{p}{idx}.bias"]
        pad = (w.shape[-1] - 1) // 2
        x = Fn.conv2d(x, w, b, stride=stride, padding=pad, groups=groups)
        if stride == 2:
            cur = torch.tensor([conv_out_len(int(n)) for n in cur], dtype=torch.int64)
    x = mask(x, cur)
    B, C, T, Fq = x.shape
    x = x.transpose(1, 2).reshape(B, T, C * Fq)  # channel-major flatten: index = c * F' + f
    x = _lin(x, sd["encoder.pre_encode.out.weight"], sd["encoder.pre_encode.out.bias"])
    return x, subsampled_lengths(lengths)


# ---------------------------------------------------------------- relative positions


def rel_pos_table(T, d, dtype):
    """Rows for relative positions T-1, T-2, ..., -(T-1) (spec §4.3), interleaved sin/cos."""
    pos = torch.arange(T - 1, -T, -1, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * -(math.log(10000.0) / d))
    pe = torch.zeros(2 * T - 1, d, dtype=torch.float32)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe.to(dtype)


def rel_shift_index(B_raw):
    """B[..., i, j] = B_raw[..., i, (T-1) - i + j]: the score of query i and key j uses the table row of
    relative position i - j. Direct gather (the derivation and the Transformer-XL pad/reshape form
    are in docs/REFERENCE.md and checked against each other in selfcheck_model.py)."""
    T = B_raw.shape[-2]
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    idx = (T - 1) - i + j  # [T, T] in 0..2T-2
    return torch.gather(B_raw, -1, idx.expand(*B_raw.shape[:-2], T, T))


def rel_shift_xl(x):
    """NeMo's implementation: pad a zero column on the left, view [2T, T], drop the first row,
    view back, keep the first T columns."""
    b, h, qlen, pos_len = x.shape
    x = Fn.pad(x, (1, 0))
    x = x.view(b, h, -1, qlen)
    x = x[:, :, 1:].reshape(b, h, qlen, pos_len)
    return x[..., :qlen]


def rel_pos_attention(sd, p, x, pos, att_mask, n_heads):
    """x [B, T, d]; pos [2T-1, d]; att_mask [B, T, T] True = masked."""
    B, T, d = x.shape
    dk = d // n_heads

    def heads(t):
        return t.view(t.shape[0], -1, n_heads, dk).transpose(1, 2)  # [B, h, T, dk]

    q = heads(_lin(x, sd[p + "linear_q.weight"], sd[p + "linear_q.bias"]))
    k = heads(_lin(x, sd[p + "linear_k.weight"], sd[p + "linear_k.bias"]))
    v = heads(_lin(x, sd[p + "linear_v.weight"], sd[p + "linear_v.bias"]))
    pp = heads(_lin(pos.unsqueeze(0), sd[p + "linear_pos.weight"]))  # [1, h, 2T-1, dk]
    u = sd[p + "pos_bias_u"].unsqueeze(0).unsqueeze(2)  # [1, h, 1, dk]
    vb = sd[p + "pos_bias_v"].unsqueeze(0).unsqueeze(2)
    ac = torch.matmul(q + u, k.transpose(-1, -2))
    bd = rel_shift_index(torch.matmul(q + vb, pp.transpose(-1, -2)))
    scores = (ac + bd) / math.sqrt(dk)
    m = att_mask.unsqueeze(1)
    scores = scores.masked_fill(m, MASK_VALUE)
    attn = torch.softmax(scores, dim=-1).masked_fill(m, 0.0)
    out = torch.matmul(attn, v).transpose(1, 2).reshape(B, T, d)
    return _lin(out, sd[p + "linear_out.weight"], sd[p + "linear_out.bias"])


def conv_module(sd, p, x, pad_mask):
    """x [B, T, d]; pad_mask [B, T] True = padded."""
    y = x.transpose(1, 2)  # [B, d, T]
    y = Fn.conv1d(y, sd[p + "pointwise_conv1.weight"], sd[p + "pointwise_conv1.bias"])
    y = Fn.glu(y, dim=1)
    y = y.masked_fill(pad_mask.unsqueeze(1), 0.0)
    w = sd[p + "depthwise_conv.weight"]
    k = w.shape[-1]
    y = Fn.conv1d(y, w, sd[p + "depthwise_conv.bias"], padding=(k - 1) // 2, groups=w.shape[0])
    bn = p + "batch_norm."
    y = (y - sd[bn + "running_mean"][:, None]) / torch.sqrt(sd[bn + "running_var"][:, None] + 1e-5)
    y = y * sd[bn + "weight"][:, None] + sd[bn + "bias"][:, None]
    y = swish(y)
    y = Fn.conv1d(y, sd[p + "pointwise_conv2.weight"], sd[p + "pointwise_conv2.bias"])
    return y.transpose(1, 2)


def feed_forward(sd, p, x):
    y = swish(_lin(x, sd[p + "linear1.weight"], sd[p + "linear1.bias"]))
    return _lin(y, sd[p + "linear2.weight"], sd[p + "linear2.bias"])


def conformer_layer(sd, p, x, pos, att_mask, pad_mask, n_heads):
    x = x + 0.5 * feed_forward(sd, p + "feed_forward1.", _ln(x, sd, p + "norm_feed_forward1"))
    x = x + rel_pos_attention(sd, p + "self_attn.", _ln(x, sd, p + "norm_self_att"), pos, att_mask, n_heads)
    x = x + conv_module(sd, p + "conv.", _ln(x, sd, p + "norm_conv"), pad_mask)
    x = x + 0.5 * feed_forward(sd, p + "feed_forward2.", _ln(x, sd, p + "norm_feed_forward2"))
    return _ln(x, sd, p + "norm_out")


def encoder_layer_count(sd):
    n = 0
    while f"encoder.layers.{n}.norm_out.weight" in sd:
        n += 1
    return n


def encoder(sd, feats, feat_lengths, n_heads, masked_subsampling, xscaling=False, taps=None):
    """feats [B, F, T] -> (encoder states [B, T', d] after encoder_decoder_proj, lengths [B]).
    taps (dict) receives 'subsampling', 'enc_layer_<i>' and 'encoder_out' (before the projection)."""
    x, lengths = subsampling(sd, feats, feat_lengths, masked_subsampling)
    if taps is not None:
        taps["subsampling"] = x
    B, T, d = x.shape
    if xscaling:
        x = x * math.sqrt(d)
    pos = rel_pos_table(T, d, x.dtype)
    valid = torch.arange(T)[None, :] < lengths[:, None]  # [B, T]
    att_mask = ~(valid[:, :, None] & valid[:, None, :])
    pad_mask = ~valid
    for i in range(encoder_layer_count(sd)):
        x = conformer_layer(sd, f"encoder.layers.{i}.", x, pos, att_mask, pad_mask, n_heads)
        if taps is not None:
            taps[f"enc_layer_{i}"] = x
    if taps is not None:
        taps["encoder_out"] = x
    if "encoder_decoder_proj.weight" in sd:
        x = _lin(x, sd["encoder_decoder_proj.weight"], sd["encoder_decoder_proj.bias"])
    return x, lengths


# ---------------------------------------------------------------- decoder


def decoder_layer_count(sd):
    n = 0
    while f"transf_decoder._decoder.layers.{n}.layer_norm_1.weight" in sd:
        n += 1
    return n


def mha(sd, p, q_in, kv_in, add_mask, n_heads, k=None, v=None):
    """NeMo MultiHeadAttention: Q and K each scaled by dk^-1/4; additive mask [B, 1, Lq, Lk].
    k/v may be given precomputed (a KV cache) as [B, h, Lk, dk]."""
    B, Lq, d = q_in.shape
    dk = d // n_heads
    scale = math.sqrt(math.sqrt(dk))

    def heads(t):
        return t.view(t.shape[0], -1, n_heads, dk).transpose(1, 2)

    q = heads(_lin(q_in, sd[p + "query_net.weight"], sd[p + "query_net.bias"])) / scale
    if k is None:
        k = heads(_lin(kv_in, sd[p + "key_net.weight"], sd[p + "key_net.bias"]))
        v = heads(_lin(kv_in, sd[p + "value_net.weight"], sd[p + "value_net.bias"]))
    scores = torch.matmul(q, k.transpose(-1, -2) / scale)
    if add_mask is not None:
        scores = scores + add_mask
    out = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(B, Lq, d)
    return _lin(out, sd[p + "out_projection.weight"], sd[p + "out_projection.bias"])


def cross_kv(sd, p, enc, n_heads):
    B, T, d = enc.shape
    dk = d // n_heads
    k = _lin(enc, sd[p + "key_net.weight"], sd[p + "key_net.bias"]).view(B, T, n_heads, dk).transpose(1, 2)
    v = _lin(enc, sd[p + "value_net.weight"], sd[p + "value_net.bias"]).view(B, T, n_heads, dk).transpose(1, 2)
    return k, v


def embed(sd, ids, start_pos):
    pfx = "transf_decoder._embedding."
    tok = sd[pfx + "token_embedding.weight"][ids]
    L = ids.shape[1]
    table = sd[pfx + "position_embedding.pos_enc"]
    if start_pos + L > table.shape[0]:
        raise ValueError(f"decoder position {start_pos + L - 1} beyond max_sequence_length {table.shape[0]}")
    pos = table[start_pos : start_pos + L].unsqueeze(0)
    return _ln(tok + pos, sd, pfx + "layer_norm")


class DecoderState:
    """The decoder cache. NeMo caches decoder_mems_list (the input of every block for all past
    positions) and recomputes keys/values from LN1(mems[k]) at every step; keys and values are
    row-wise functions of those inputs, so caching K/V per layer gives the same numbers with less
    work (the same cache the C engine and the ONNX export keep).
      self_kv[i] = (K, V) of block i's self-attention, [B, h, L_so_far, dk]
      cross[i]   = (K, V) of block i's cross-attention over the encoder states [B, h, T, dk]"""

    def __init__(self, self_kv=None, cross=None):
        self.self_kv = self_kv
        self.cross = cross or {}

    def select(self, index, same_items=False):
        """Rows of the cache in a new order. same_items=True promises that every row is replaced by a
        row of the same utterance (beam reordering), whose cross-attention K/V are identical."""
        cross = self.cross if same_items else {k: (kv[0][index], kv[1][index]) for k, kv in self.cross.items()}
        return DecoderState({k: (kv[0][index], kv[1][index]) for k, kv in self.self_kv.items()}, cross)

    @property
    def length(self):
        return 0 if self.self_kv is None else self.self_kv[0][0].shape[2]


def _heads(t, n_heads):
    B, L, d = t.shape
    return t.view(B, L, n_heads, d // n_heads).transpose(1, 2)


def decoder_step(sd, ids, start_pos, state, enc, enc_mask, n_heads, pad_id, all_positions=False):
    """Run the decoder on ids [B, L] at positions start_pos.. with the cached state; returns
    (log-probs [B, V] of the last position, or [B, L, V] with all_positions, new state).
    enc_mask [B, T] bool True = valid frame."""
    x = embed(sd, ids, start_pos)
    B, L, d = x.shape
    # Self-attention mask (form_attention_mask): keys that are <pad> are masked, causal within the
    # fed block. With a cache NeMo builds the mask from the fed ids only ([B,1,L,L]); for L == 1 that
    # broadcasts one constant over all keys, which does not change the softmax.
    key_ok = (ids != pad_id)
    if state.self_kv is None:
        allowed = key_ok[:, None, :] & torch.tril(torch.ones(L, L, dtype=torch.bool))[None]
        self_mask = ((~allowed).to(x.dtype) * MASK_VALUE).unsqueeze(1)
    else:
        if L != 1:
            raise ValueError("with a cache, feed one token at a time")
        self_mask = ((~key_ok[:, None, :]).to(x.dtype) * MASK_VALUE).unsqueeze(1)
    cross_mask = ((~enc_mask[:, None, :]).to(x.dtype) * MASK_VALUE).unsqueeze(1)

    new_kv = {}
    h = x
    for i in range(decoder_layer_count(sd)):
        p = f"transf_decoder._decoder.layers.{i}."
        q = _ln(h, sd, p + "layer_norm_1")
        k = _heads(_lin(q, sd[p + "first_sub_layer.key_net.weight"], sd[p + "first_sub_layer.key_net.bias"]), n_heads)
        v = _heads(_lin(q, sd[p + "first_sub_layer.value_net.weight"], sd[p + "first_sub_layer.value_net.bias"]),
                   n_heads)
        if state.self_kv is not None:
            k = torch.cat([state.self_kv[i][0], k], dim=2)
            v = torch.cat([state.self_kv[i][1], v], dim=2)
        new_kv[i] = (k, v)
        a = mha(sd, p + "first_sub_layer.", q, None, self_mask, n_heads, k, v) + h
        if i not in state.cross:
            state.cross[i] = cross_kv(sd, p + "second_sub_layer.", enc, n_heads)
        ck, cv = state.cross[i]
        c = mha(sd, p + "second_sub_layer.", _ln(a, sd, p + "layer_norm_2"), None, cross_mask, n_heads, ck, cv) + a
        f = _ln(c, sd, p + "layer_norm_3")
        f = _lin(torch.relu(_lin(f, sd[p + "third_sub_layer.dense_in.weight"], sd[p + "third_sub_layer.dense_in.bias"])),
                 sd[p + "third_sub_layer.dense_out.weight"], sd[p + "third_sub_layer.dense_out.bias"])
        h = f + c
    h = _ln(h, sd, "transf_decoder._decoder.final_layer_norm")
    logits = _lin(h if all_positions else h[:, -1], sd["log_softmax.mlp.layer0.weight"],
                  sd["log_softmax.mlp.layer0.bias"])
    return torch.log_softmax(logits, dim=-1), DecoderState(new_kv, state.cross)
