"""model_config.yaml contents with NeMo's keys (EncDecMultiTaskModel / EncDecCTCModelBPE)."""


def preprocessor():
    return {
        "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
        "sample_rate": 16000, "normalize": "per_feature", "window_size": 0.025,
        "window_stride": 0.01, "window": "hann", "features": 128, "n_fft": 512, "log": True,
        "frame_splicing": 1, "dither": 1.0e-05, "pad_to": 0, "pad_value": 0.0,
    }


def encoder(n_layers, d, heads, sub_ch, use_bias=True, xscaling=False):
    return {
        "_target_": "nemo.collections.asr.modules.ConformerEncoder",
        "feat_in": 128, "feat_out": -1, "n_layers": n_layers, "d_model": d, "use_bias": use_bias,
        "subsampling": "dw_striding", "subsampling_factor": 8, "subsampling_conv_channels": sub_ch,
        "causal_downsampling": False, "ff_expansion_factor": 4, "self_attention_model": "rel_pos",
        "n_heads": heads, "att_context_size": [-1, -1], "att_context_style": "regular",
        "xscaling": xscaling, "untie_biases": True, "pos_emb_max_len": 5000,
        "conv_kernel_size": 9, "conv_norm_type": "batch_norm", "conv_context_size": None,
        "dropout": 0.1, "dropout_pre_encoder": 0.1, "dropout_emb": 0.0, "dropout_att": 0.1,
        "stochastic_depth_drop_prob": 0.0, "stochastic_depth_mode": "linear",
        "stochastic_depth_start_layer": 1,
    }


def aed(layout, dims, tokenizer_cfg, vocab_rows, nemo_version):
    d_enc, d_dec = dims["d_enc"], dims["d_dec"]
    cfg = {
        "sample_rate": 16000,
        "label_smoothing": 0.0,
        "use_loss_mask_for_prompt": False,
        "log_prediction": True,
        "prompt_format": layout["prompt_format"],
    }
    if layout["prompt_format"] == "canary2":
        cfg["prompt_defaults"] = [
            {"role": "user", "slots": {"decodercontext": "", "source_lang": "<|en|>",
                                       "target_lang": "<|en|>", "emotion": "<|emo:undefined|>",
                                       "pnc": "<|pnc|>", "itn": "<|noitn|>",
                                       "diarize": "<|nodiarize|>", "timestamp": "<|notimestamp|>"}},
        ]
    cfg.update({
        "model_defaults": {"asr_enc_hidden": d_enc, "lm_enc_hidden": d_dec, "lm_dec_hidden": d_dec},
        "tokenizer": tokenizer_cfg,
        "preprocessor": preprocessor(),
        "spec_augment": {
            "_target_": "nemo.collections.asr.modules.SpectrogramAugmentation",
            "freq_masks": 2, "time_masks": 10, "freq_width": 27, "time_width": 0.05,
        },
        "encoder": encoder(dims["enc_layers"], d_enc, dims["enc_heads"], dims["sub_ch"]),
        "transf_encoder": {
            "_target_": "nemo.collections.asr.modules.transformer.transformer_encoders.TransformerEncoder",
            "num_layers": 0, "hidden_size": d_dec, "inner_size": 4 * d_dec,
            "num_attention_heads": dims["dec_heads"], "ffn_dropout": 0.1,
            "attn_score_dropout": 0.1, "attn_layer_dropout": 0.1, "mask_future": False,
            "pre_ln": True, "pre_ln_final_layer_norm": True,
        },
        "transf_decoder": {
            "_target_": "nemo.collections.asr.modules.transformer.get_nemo_transformer",
            "model_name": None, "pretrained": False, "encoder": None,
            "pre_ln_final_layer_norm": True,
            "config_dict": {
                "max_sequence_length": dims["max_seq"], "num_token_types": 0,
                "embedding_dropout": 0.1, "learn_positional_encodings": False,
                "hidden_size": d_dec, "inner_size": 4 * d_dec, "num_layers": dims["dec_layers"],
                "num_attention_heads": dims["dec_heads"], "ffn_dropout": 0.1,
                "attn_score_dropout": 0.1, "attn_layer_dropout": 0.1, "hidden_act": "relu",
                "pre_ln": True, "vocab_size": vocab_rows,
            },
        },
        "head": {
            "_target_": "nemo.collections.asr.parts.submodules.token_classifier.TokenClassifier",
            "num_layers": 1, "activation": "relu", "log_softmax": True, "hidden_size": d_dec,
            "num_classes": vocab_rows, "dropout": 0.0, "use_transformer_init": True,
        },
        "decoding": {
            "strategy": "beam",
            "return_best_hypothesis": True,
            "beam": {"beam_size": 1, "len_pen": 0.0, "max_generation_delta": 50},
        },
        "loss": {
            "_target_": "nemo.collections.common.losses.smoothed_cross_entropy.SmoothedCrossEntropyLoss",
            "label_smoothing": 0.0,
        },
        "target": "nemo.collections.asr.models.aed_multitask_models.EncDecMultiTaskModel",
        "nemo_version": nemo_version,
    })
    return cfg


def ctc(dims, tokenizer_cfg, nemo_version):
    d = dims["ctc_d"]
    return {
        "sample_rate": 16000,
        "log_prediction": True,
        "ctc_reduction": "mean_volume",
        "tokenizer": tokenizer_cfg,
        "preprocessor": preprocessor(),
        "encoder": encoder(dims["ctc_layers"], d, dims["enc_heads"], dims["sub_ch"],
                           use_bias=False, xscaling=True),
        "decoder": {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
            "feat_in": d, "num_classes": dims["unified_vocab"], "vocabulary": [],
        },
        "target": "nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE",
        "nemo_version": nemo_version,
    }
