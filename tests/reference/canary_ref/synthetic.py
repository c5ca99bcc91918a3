"""A random state dict with NeMo's key names, for self-checks that must not depend on the generator
(tools/make-test-model). Scales keep activations healthy through a few layers."""

import math

import torch

from . import features as F


def _xavier(g, out_f, in_f, dtype):
    return torch.randn(out_f, in_f, generator=g, dtype=dtype) * math.sqrt(2.0 / (in_f + out_f))


def _vec(g, n, dtype, scale=0.02, base=0.0):
    return base + scale * torch.randn(n, generator=g, dtype=dtype)


def make_state_dict(seed=0, d_enc=32, enc_layers=2, enc_heads=4, sub_ch=8, d_dec=32, dec_layers=2,
                    dec_heads=4, vocab=40, max_seq=64, n_mels=128, conv_kernel=9, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def lin(name, out_f, in_f, bias=True):
        sd[name + ".weight"] = _xavier(g, out_f, in_f, dtype)
        if bias:
            sd[name + ".bias"] = _vec(g, out_f, dtype)

    def ln(name, n):
        sd[name + ".weight"] = _vec(g, n, dtype, 0.05, 1.0)
        sd[name + ".bias"] = _vec(g, n, dtype)

    sd["preprocessor.featurizer.window"] = F.hann_window(F.WIN_LENGTH, torch.float32).to(dtype)
    sd["preprocessor.featurizer.fb"] = torch.from_numpy(F.slaney_mel_filterbank(n_mels=n_mels)).unsqueeze(0).to(dtype)
    p = "encoder.pre_encode.conv."
    sd[p + "0.weight"] = torch.randn(sub_ch, 1, 3, 3, generator=g, dtype=dtype) / 3.0
    sd[p + "0.bias"] = _vec(g, sub_ch, dtype)
    for i in (2, 5):
        sd[f"{p}{i}.weight"] = torch.randn(sub_ch, 1, 3, 3, generator=g, dtype=dtype) / 3.0
        sd[f"{p}{i}.bias"] = _vec(g, sub_ch, dtype)
    for i in (3, 6):
        sd[f"{p}{i}.weight"] = torch.randn(sub_ch, sub_ch, 1, 1, generator=g, dtype=dtype) / math.sqrt(sub_ch)
        sd[f"{p}{i}.bias"] = _vec(g, sub_ch, dtype)
    lin("encoder.pre_encode.out", d_enc, sub_ch * (n_mels // 8))
    dk = d_enc // enc_heads
    for layer in range(enc_layers):
        q = f"encoder.layers.{layer}."
        for ff in ("feed_forward1", "feed_forward2"):
            ln(q + "norm_" + ff, d_enc)
            lin(q + ff + ".linear1", 4 * d_enc, d_enc)
            lin(q + ff + ".linear2", d_enc, 4 * d_enc)
        ln(q + "norm_self_att", d_enc)
        for n in ("linear_q", "linear_k", "linear_v", "linear_out"):
            lin(q + "self_attn." + n, d_enc, d_enc)
        lin(q + "self_attn.linear_pos", d_enc, d_enc, bias=False)
        sd[q + "self_attn.pos_bias_u"] = torch.randn(enc_heads, dk, generator=g, dtype=dtype) * 0.1
        sd[q + "self_attn.pos_bias_v"] = torch.randn(enc_heads, dk, generator=g, dtype=dtype) * 0.1
        ln(q + "norm_conv", d_enc)
        sd[q + "conv.pointwise_conv1.weight"] = _xavier(g, 2 * d_enc, d_enc, dtype).unsqueeze(-1)
        sd[q + "conv.pointwise_conv1.bias"] = _vec(g, 2 * d_enc, dtype)
        sd[q + "conv.depthwise_conv.weight"] = torch.randn(d_enc, 1, conv_kernel, generator=g, dtype=dtype) / 3.0
        sd[q + "conv.depthwise_conv.bias"] = _vec(g, d_enc, dtype)
        bn = q + "conv.batch_norm."
        sd[bn + "weight"] = _vec(g, d_enc, dtype, 0.05, 1.0)
        sd[bn + "bias"] = _vec(g, d_enc, dtype)
        sd[bn + "running_mean"] = _vec(g, d_enc, dtype, 0.1)
        sd[bn + "running_var"] = 0.5 + torch.rand(d_enc, generator=g, dtype=dtype)
        sd[bn + "num_batches_tracked"] = torch.tensor(1000, dtype=torch.int64)
        sd[q + "conv.pointwise_conv2.weight"] = _xavier(g, d_enc, d_enc, dtype).unsqueeze(-1)
        sd[q + "conv.pointwise_conv2.bias"] = _vec(g, d_enc, dtype)
        ln(q + "norm_out", d_enc)
    if d_enc != d_dec:
        lin("encoder_decoder_proj", d_dec, d_enc)
    e = "transf_decoder._embedding."
    sd[e + "token_embedding.weight"] = torch.randn(vocab, d_dec, generator=g, dtype=dtype) * 0.5
    pos = torch.arange(max_seq, dtype=torch.float64)[:, None]
    div = torch.exp(torch.arange(0, d_dec, 2, dtype=torch.float64) * -(math.log(10000.0) / d_dec))
    pe = torch.zeros(max_seq, d_dec, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    sd[e + "position_embedding.pos_enc"] = (pe / math.sqrt(d_dec)).to(dtype)
    ln(e + "layer_norm", d_dec)
    for layer in range(dec_layers):
        q = f"transf_decoder._decoder.layers.{layer}."
        for i in (1, 2, 3):
            ln(q + f"layer_norm_{i}", d_dec)
        for sub in ("first_sub_layer", "second_sub_layer"):
            for n in ("query_net", "key_net", "value_net", "out_projection"):
                lin(q + sub + "." + n, d_dec, d_dec)
        lin(q + "third_sub_layer.dense_in", 4 * d_dec, d_dec)
        lin(q + "third_sub_layer.dense_out", d_dec, 4 * d_dec)
    ln("transf_decoder._decoder.final_layer_norm", d_dec)
    sd["log_softmax.mlp.layer0.weight"] = sd[e + "token_embedding.weight"]  # tied, as in NeMo
    sd["log_softmax.mlp.layer0.bias"] = _vec(g, vocab, dtype)
    return sd
