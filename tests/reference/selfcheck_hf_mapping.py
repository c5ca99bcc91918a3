#!/usr/bin/python3
"""transformers is not installable here, so hf_crosscheck.py's key conversion is checked offline:
every NeMo key of a tiny canary-1b-v2 state dict (synthetic, NeMo names) must land on exactly one key of
each known HF Canary naming generation (the converter's names and the current modeling names),
with the tensor it came from."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_crosscheck as H  # noqa: E402
from canary_ref import synthetic  # noqa: E402


def hf_keys(sd, naming):
    """The HF model's parameter names for the NeMo state dict, written out independently of the rules."""
    keys = set()
    dec_layers = sorted({int(k.split(".")[3]) for k in sd if k.startswith("transf_decoder._decoder.layers.")})
    enc_layers = sorted({int(k.split(".")[2]) for k in sd if k.startswith("encoder.layers.")})
    for i in (0, 2, 3, 5, 6):
        keys |= {f"model.encoder.subsampling.layers.{i}.weight", f"model.encoder.subsampling.layers.{i}.bias"}
    keys |= {"model.encoder.subsampling.linear.weight", "model.encoder.subsampling.linear.bias"}
    for i in enc_layers:
        p = f"model.encoder.layers.{i}."
        for n in ("norm_feed_forward1", "norm_self_att", "norm_conv", "norm_feed_forward2", "norm_out",
                  "feed_forward1.linear1", "feed_forward1.linear2", "feed_forward2.linear1", "feed_forward2.linear2",
                  "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                  "conv.pointwise_conv1", "conv.depthwise_conv", "conv.pointwise_conv2", "conv.norm"):
            keys |= {p + n + ".weight", p + n + ".bias"}
        keys |= {p + "self_attn.relative_k_proj.weight", p + "self_attn.bias_u", p + "self_attn.bias_v",
                 p + "conv.norm.running_mean", p + "conv.norm.running_var", p + "conv.norm.num_batches_tracked"}
    if naming == "converter":
        names = dict(ln1="self_attn_layer_norm", ln2="encoder_attn_layer_norm", ln3="final_layer_norm",
                     o="out_proj", fc="", final="decoder.layer_norm", emb="decoder.layernorm_embedding")
    else:
        names = dict(ln1="input_layernorm", ln2="post_attention_layernorm", ln3="final_layernorm",
                     o="o_proj", fc="mlp.", final="decoder.norm", emb="decoder.embedding_layernorm")
    keys |= {"model.decoder.embed_tokens.weight", "proj_out.weight", "proj_out.bias"}
    for x in ("weight", "bias"):
        keys |= {f"model.{names['final']}.{x}", f"model.{names['emb']}.{x}"}
    for i in dec_layers:
        p = f"model.decoder.layers.{i}."
        for x in ("weight", "bias"):
            keys |= {p + names["ln1"] + "." + x, p + names["ln2"] + "." + x, p + names["ln3"] + "." + x,
                     p + names["fc"] + "fc1." + x, p + names["fc"] + "fc2." + x}
            for att in ("self_attn", "encoder_attn"):
                keys |= {f"{p}{att}.{q}.{x}" for q in ("q_proj", "k_proj", "v_proj", names["o"])}
    return keys


def main():
    sd = synthetic.make_state_dict(seed=3, d_enc=32, d_dec=32)
    failures = []
    for naming in ("converter", "modeling"):
        keys = hf_keys(sd, naming)
        notes = []
        conv = H.convert_state_dict(sd, keys, notes)
        missing = sorted(keys - set(conv))
        if missing:
            failures.append(f"{naming}: HF keys left unmapped: {missing[:8]}")
        # Spot-check that values travel with their names.
        checks = {"model.decoder.embed_tokens.weight": "transf_decoder._embedding.token_embedding.weight",
                  "proj_out.bias": "log_softmax.mlp.layer0.bias",
                  "model.encoder.layers.1.self_attn.relative_k_proj.weight": "encoder.layers.1.self_attn.linear_pos.weight",
                  "model.encoder.layers.0.conv.norm.running_var": "encoder.layers.0.conv.batch_norm.running_var",
                  "model.encoder.subsampling.layers.5.weight": "encoder.pre_encode.conv.5.weight"}
        ln3 = ("model.decoder.layers.1.final_layer_norm.weight" if naming == "converter"
               else "model.decoder.layers.1.final_layernorm.weight")
        checks[ln3] = "transf_decoder._decoder.layers.1.layer_norm_3.weight"
        for hk, nk in checks.items():
            if hk not in conv or conv[hk] is not sd[nk]:
                failures.append(f"{naming}: {hk} does not carry {nk}")
        print(f"{'ok  ' if not failures else 'FAIL'} {naming} naming: {len(conv)} of {len(keys)} keys mapped")
    for k in sd:
        if k.startswith(("transf_decoder.", "log_softmax.")) and not k.endswith("pos_enc"):
            if H.nemo_decoder_canonical(k) is None:
                failures.append(f"NeMo key without canonical name: {k}")
    if failures:
        print("\n".join(["FAILED:"] + failures))
        return 1
    print("hf mapping self-check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
