"""End-to-end Canary inference on a loaded .nemo: features -> encoder -> decoder -> ids -> text."""

import numpy as np
import torch

from . import decoding as D
from . import features as F
from . import model as M
from . import prompt as P
from .nemo import NemoModel


class CanaryReference:
    def __init__(self, path, dtype=torch.float64):
        self.nemo = NemoModel(path)
        self.dtype = dtype
        cfg = self.nemo.config
        # Float tensors in the working precision; integer buffers (num_batches_tracked) as they are.
        self.sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in self.nemo.state.items()}
        self.tok = self.nemo.tokenizer
        self.enc_heads = int(cfg["encoder"]["n_heads"])
        self.xscaling = bool(cfg["encoder"].get("xscaling", False))
        dec = cfg["transf_decoder"]["config_dict"]
        self.dec_heads = int(dec["num_attention_heads"])
        self.max_seq_len = int(dec["max_sequence_length"])
        self.prompt_format = cfg.get("prompt_format", "canary")
        dcfg = cfg.get("decoding", {}) or {}
        beam = dcfg.get("beam", {}) or {}
        greedy = dcfg.get("greedy", {}) or {}
        # MultiTaskDecoding reads each strategy's own section; the dataclass default is -1 (no delta).
        self.max_delta = int(beam.get("max_generation_delta", -1))
        self.max_delta_greedy = int(greedy.get("max_generation_delta", -1))
        sub = cfg["encoder"].get("subsampling", "dw_striding")
        if sub != "dw_striding" or int(cfg["encoder"].get("subsampling_factor", 8)) != 8:
            raise ValueError(f"only dw_striding x8 subsampling is implemented, config has {sub}")
        self.fb = self.sd.get("preprocessor.featurizer.fb")
        self.window = self.sd.get("preprocessor.featurizer.window")

    # -------------------------------------------------------------- stages

    def features(self, audios, semantics):
        lengths = [len(a) for a in audios]
        L = max(lengths)
        batch = torch.zeros(len(audios), L, dtype=self.dtype)
        for i, a in enumerate(audios):
            batch[i, : len(a)] = torch.as_tensor(np.asarray(a, dtype=np.float32)).to(self.dtype)
        return F.nemo_features_batch(batch, lengths, semantics, fb=self.fb, window=self.window, dtype=self.dtype)

    def encode(self, feats, feat_lengths, semantics, taps=None):
        return M.encoder(self.sd, feats, feat_lengths, self.enc_heads, semantics == "nemo-2.5",
                         self.xscaling, taps)

    def prompt(self, v2_style="nemo", **opts):
        return P.prompt_ids(self.tok, self.prompt_format, v2_style=v2_style, **opts)

    def decode(self, enc, enc_lengths, prompt_ids, strategy="beam", beam_size=1, max_delta=None, logprob_steps=0):
        B, T, _ = enc.shape
        enc_mask = torch.arange(T)[None, :] < enc_lengths[:, None]
        prompt = torch.tensor([prompt_ids] * B, dtype=torch.int64)
        if max_delta is not None:
            md = max_delta
        else:
            md = self.max_delta_greedy if strategy == "greedy" else self.max_delta
        common = dict(n_heads=self.dec_heads, eos=self.tok.eos, pad=self.tok.pad, max_seq_len=self.max_seq_len,
                      max_delta=md, logprob_steps=logprob_steps)
        if strategy == "greedy":
            return D.greedy(self.sd, enc, enc_mask, prompt, **common)
        if strategy == "beam":
            return D.beam_search(self.sd, enc, enc_mask, prompt, beam_size=beam_size, **common)
        raise ValueError(f"unknown strategy {strategy!r}")

    def transcribe(self, audios, semantics="nemo-2.5", strategy="beam", beam_size=1, **prompt_opts):
        audios = [F.pad_min_duration(a) for a in audios]
        feats, flen = self.features(audios, semantics)
        enc, elen = self.encode(feats, flen, semantics)
        ids, _ = self.decode(enc, elen, self.prompt(**prompt_opts), strategy, beam_size)
        return [self.tok.ids_to_text(x) for x in ids], ids
