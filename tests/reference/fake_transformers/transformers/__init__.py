"""A stand-in for the few transformers APIs hf_crosscheck.py uses, so the script's whole flow can be
exercised here (transformers itself cannot be installed on this machine). It is NOT transformers: the
model computes with canary_ref, under transformers' current parameter names, with a [sin | cos]
decoder position buffer scaled like CanaryPositionalEmbedding. Used only by selfcheck_hf_crosscheck.py.
"""
import math
import os
import sys
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from canary_ref import features as F  # noqa: E402
from canary_ref import model as M  # noqa: E402

__version__ = "0.0-fake"


class _Cfg(types.SimpleNamespace):
    pass


class CanaryConfig:
    def __init__(self, encoder_config=None, decoder_config=None, **kwargs):
        if encoder_config is None or decoder_config is None or kwargs:
            raise TypeError("fake CanaryConfig takes encoder_config and decoder_config only")
        self.encoder_config = _Cfg(**encoder_config)
        self.decoder_config = _Cfg(**decoder_config)
        self.decoder_start_token_id = 7


def _names(cfg):
    """transformers' parameter names (modeling naming) -> NeMo names."""
    e, d = cfg.encoder_config, cfg.decoder_config
    out = {}
    for i in (0, 2, 3, 5, 6):
        for x in ("weight", "bias"):
            out[f"model.encoder.subsampling.layers.{i}.{x}"] = f"encoder.pre_encode.conv.{i}.{x}"
    for x in ("weight", "bias"):
        out[f"model.encoder.subsampling.linear.{x}"] = f"encoder.pre_encode.out.{x}"
    for i in range(e.num_hidden_layers):
        h, n = f"model.encoder.layers.{i}.", f"encoder.layers.{i}."
        for a, b in [("norm_feed_forward1", "norm_feed_forward1"), ("norm_self_att", "norm_self_att"),
                     ("norm_conv", "norm_conv"), ("norm_feed_forward2", "norm_feed_forward2"),
                     ("norm_out", "norm_out"), ("feed_forward1.linear1", "feed_forward1.linear1"),
                     ("feed_forward1.linear2", "feed_forward1.linear2"),
                     ("feed_forward2.linear1", "feed_forward2.linear1"),
                     ("feed_forward2.linear2", "feed_forward2.linear2"), ("self_attn.q_proj", "self_attn.linear_q"),
                     ("self_attn.k_proj", "self_attn.linear_k"), ("self_attn.v_proj", "self_attn.linear_v"),
                     ("self_attn.o_proj", "self_attn.linear_out"), ("conv.pointwise_conv1", "conv.pointwise_conv1"),
                     ("conv.depthwise_conv", "conv.depthwise_conv"), ("conv.pointwise_conv2", "conv.pointwise_conv2"),
                     ("conv.norm", "conv.batch_norm")]:
            for x in ("weight", "bias"):
                out[h + a + "." + x] = n + b + "." + x
        out[h + "self_attn.relative_k_proj.weight"] = n + "self_attn.linear_pos.weight"
        out[h + "self_attn.bias_u"] = n + "self_attn.pos_bias_u"
        out[h + "self_attn.bias_v"] = n + "self_attn.pos_bias_v"
        out[h + "conv.norm.running_mean"] = n + "conv.batch_norm.running_mean"
        out[h + "conv.norm.running_var"] = n + "conv.batch_norm.running_var"
    out["model.decoder.embed_tokens.weight"] = "transf_decoder._embedding.token_embedding.weight"
    out["proj_out.weight"] = "log_softmax.mlp.layer0.weight"
    out["proj_out.bias"] = "log_softmax.mlp.layer0.bias"
    for x in ("weight", "bias"):
        out[f"model.decoder.embedding_layernorm.{x}"] = f"transf_decoder._embedding.layer_norm.{x}"
        out[f"model.decoder.norm.{x}"] = f"transf_decoder._decoder.final_layer_norm.{x}"
    for i in range(d.num_hidden_layers):
        h, n = f"model.decoder.layers.{i}.", f"transf_decoder._decoder.layers.{i}."
        for x in ("weight", "bias"):
            out[h + f"input_layernorm.{x}"] = n + f"layer_norm_1.{x}"
            out[h + f"post_attention_layernorm.{x}"] = n + f"layer_norm_2.{x}"
            out[h + f"final_layernorm.{x}"] = n + f"layer_norm_3.{x}"
            out[h + f"mlp.fc1.{x}"] = n + f"third_sub_layer.dense_in.{x}"
            out[h + f"mlp.fc2.{x}"] = n + f"third_sub_layer.dense_out.{x}"
            for att, sub in (("self_attn", "first_sub_layer"), ("encoder_attn", "second_sub_layer")):
                for a, b in (("q_proj", "query_net"), ("k_proj", "key_net"), ("v_proj", "value_net"),
                             ("o_proj", "out_projection")):
                    out[f"{h}{att}.{a}.{x}"] = f"{n}{sub}.{b}.{x}"
    return out


class _Holder(torch.nn.Module):
    pass


class _Out(dict):
    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k)


class _EncoderHolder(torch.nn.Module):
    """model.encoder: holds the encoder parameters and runs canary_ref's encoder on them."""

    def forward(self, input_features, attention_mask=None):
        sd = self.top._nemo_sd()
        lengths = attention_mask.sum(-1) if attention_mask is not None else \
            torch.full((input_features.shape[0],), input_features.shape[1])
        x, _ = M.encoder(sd, input_features.transpose(1, 2).double(), lengths,
                         self.top.cfg.encoder_config.num_attention_heads, True, False)
        return _Out(last_hidden_state=x.float(), attention_mask=None)


class CanaryForConditionalGeneration(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.names = _names(cfg)
        self.generation_config = types.SimpleNamespace()
        # Shapes come from the checkpoint named by FAKE_HF_NEMO (the real class derives them from cfg).
        from canary_ref.nemo import NemoModel
        shapes = {k: v.shape for k, v in NemoModel(os.environ["FAKE_HF_NEMO"]).state.items()}
        for hk in self.names:
            parts = hk.split(".")
            mod = self
            for j, p in enumerate(parts[:-1]):
                if p not in mod._modules:
                    holder = _EncoderHolder() if parts[: j + 1] == ["model", "encoder"] else _Holder()
                    if isinstance(holder, _EncoderHolder):
                        object.__setattr__(holder, "top", self)
                    mod.add_module(p, holder)
                mod = mod._modules[p]
            t = torch.zeros(shapes[self.names[hk]])
            if parts[-1].startswith("running_"):
                mod.register_buffer(parts[-1], t)
            else:
                mod.register_parameter(parts[-1], torch.nn.Parameter(t, requires_grad=False))
        d = cfg.decoder_config.hidden_size
        n = cfg.decoder_config.max_position_embeddings
        pos = torch.arange(n, dtype=torch.float32)[:, None]
        inv = torch.exp(-torch.arange(d // 2, dtype=torch.float32) * (2.0 * math.log(10000.0) / d))
        self.model.decoder.add_module("pos_emb", _Holder())
        self.model.decoder.pos_emb.register_buffer(
            "positional_embedding", torch.cat([torch.sin(pos * inv), torch.cos(pos * inv)], dim=1), persistent=False)

    def load_state_dict(self, sd, strict=True):
        own = dict(self.named_parameters())
        own.update(dict(self.named_buffers()))
        missing = [k for k in self.names if k not in sd]
        unexpected = [k for k in sd if k not in own]
        with torch.no_grad():
            for k, v in sd.items():
                if k in own:
                    parts = k.split(".")
                    mod = self
                    for p in parts[:-1]:
                        mod = getattr(mod, p)
                    if parts[-1] in mod._parameters:
                        mod._parameters[parts[-1]] = torch.nn.Parameter(v.clone().float(), requires_grad=False)
                    else:
                        mod._buffers[parts[-1]] = v.clone().float()
        return types.SimpleNamespace(missing_keys=missing, unexpected_keys=unexpected)

    def _nemo_sd(self):
        params = dict(self.named_parameters())
        params.update(dict(self.named_buffers()))
        sd = {nk: params[hk].double() for hk, nk in self.names.items()}
        d = self.cfg.decoder_config.hidden_size
        sd["transf_decoder._embedding.position_embedding.pos_enc"] = \
            self.model.decoder.pos_emb.positional_embedding.double() / math.sqrt(d)
        return sd

    def forward(self, encoder_outputs=None, decoder_input_ids=None, use_cache=False, **kw):
        sd = self._nemo_sd()
        enc = encoder_outputs.last_hidden_state.double()
        emask = torch.ones(enc.shape[:2], dtype=torch.bool)
        ids = decoder_input_ids
        lp, _ = M.decoder_step(sd, ids, 0, M.DecoderState(), enc, emask,
                               self.cfg.decoder_config.num_attention_heads, 2, all_positions=True)
        return _Out(logits=lp.float())

    def generate(self, input_features=None, attention_mask=None, decoder_input_ids=None, max_new_tokens=1, **kw):
        enc = self.model.encoder(input_features, attention_mask).last_hidden_state
        n = int(M.subsampled_lengths([int(attention_mask.sum())])[0])
        eo = _Out(last_hidden_state=enc[:, :n])
        ids = decoder_input_ids
        for _ in range(max_new_tokens):
            t = int(self.forward(encoder_outputs=eo, decoder_input_ids=ids).logits[0, -1].argmax())
            ids = torch.cat([ids, torch.tensor([[t]])], dim=1)
            if t == self.generation_config.eos_token_id:
                break
        return ids


class ParakeetFeatureExtractor:
    def __init__(self, **kw):
        self.kw = kw

    def __call__(self, audio, sampling_rate=16000, return_tensors="pt", return_attention_mask=True):
        f, n = F.nemo_features(torch.as_tensor(audio, dtype=torch.float64), "nemo-2.5")
        mask = torch.zeros(1, f.shape[1], dtype=torch.long)
        mask[0, :n] = 1
        return {"input_features": f.T[None].float(), "attention_mask": mask}
