"""NeMo's Canary decoding (spec §7), on top of model.decoder_step.

beam_search: BeamSearchSequenceGenerator, the default `strategy: beam` path (beam 1 included):
  generated tokens are fed at their true positions P, P+1, ...; the GNMT length penalty with
  alpha = 0 (NeMo reads `length_penalty` while configs say `len_pen`, so it is effectively 0).
greedy: GreedySequenceGenerator (`strategy: greedy`): token i >= 1 is fed at position i.
Both return, per batch item, the generated ids without the prompt and without trailing EOS/PAD.
"""

import torch

from . import model as M


def max_generation_length(max_seq_len, src_len, prompt_len, max_delta):
    """_prepare_for_search: src_len is the padded encoder length of the batch."""
    limit = min(max_seq_len, src_len + max_delta) if max_delta >= 0 else max_seq_len
    return limit - prompt_len


def strip_output(seq, prompt_len, eos, pad):
    out = list(seq[prompt_len:])
    # NeMo strips trailing EOS/PAD; everything after the first EOS is PAD by construction.
    while out and out[-1] in (eos, pad):
        out.pop()
    return out


def greedy(sd, enc, enc_mask, prompt, n_heads, eos, pad, max_seq_len, max_delta=-1, logprob_steps=0):
    """prompt: [B, P] ids. Returns (list of id lists, first-steps log-probs [B, steps, V])."""
    B, P = prompt.shape
    gen_len = max_generation_length(max_seq_len, enc.shape[1], P, max_delta)
    tgt = prompt.clone()
    done = torch.zeros(B, dtype=torch.bool)
    state = M.DecoderState()
    first = []
    for i in range(gen_len):
        ids = tgt if i == 0 else tgt[:, -1:]
        logp, state = M.decoder_step(sd, ids, i, state, enc, enc_mask, n_heads, pad)
        if i < logprob_steps:
            first.append(logp)
        nxt = torch.argmax(logp, dim=-1)
        nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
        done = done | (nxt == eos)
        tgt = torch.cat([tgt, nxt[:, None]], dim=1)
        if bool(done.all()):
            break
    steps = torch.stack(first, dim=1) if first else None
    return [strip_output(tgt[b].tolist(), P, eos, pad) for b in range(B)], steps


def beam_search(sd, enc, enc_mask, prompt, n_heads, eos, pad, max_seq_len, beam_size, max_delta=-1,
                len_pen=0.0, logprob_steps=0):
    """Returns (best id lists per item, first-steps log-probs of the best beam's path is not defined,
    so the log-probs returned are those of beam 0 at each step [B, steps, V])."""
    B, P = prompt.shape
    k = beam_size
    gen_len = max_generation_length(max_seq_len, enc.shape[1], P, max_delta)
    logp, state = M.decoder_step(sd, prompt, 0, M.DecoderState(), enc, enc_mask, n_heads, pad)
    first = [logp] if logprob_steps > 0 else []
    scores, tok = torch.topk(logp, k, dim=-1)  # [B, k]
    scores = scores.reshape(-1, 1)
    prefixes = torch.cat([prompt.repeat_interleave(k, dim=0), tok.reshape(-1, 1)], dim=1)
    state = state.select(torch.arange(B).repeat_interleave(k))
    enc_k = enc.repeat_interleave(k, dim=0)
    mask_k = enc_mask.repeat_interleave(k, dim=0)
    pad_profile = torch.zeros(B * k, 1, dtype=torch.int64)
    prefixes_len = torch.full((B * k, 1), float(prefixes.shape[1] + 1), dtype=scores.dtype)

    def penalty(lengths):
        return ((5.0 + lengths) / 6.0) ** len_pen

    for i in range(P, P + gen_len):
        pad_mask = pad_profile.repeat(1, k)  # [B*k, k]
        logp, state = M.decoder_step(sd, prefixes[:, -1:], i, state, enc_k, mask_k, n_heads, pad)
        if len(first) < logprob_steps:
            first.append(logp.view(B, k, -1)[:, 0])
        scores_i, tok_i = torch.topk(logp, k, dim=-1)  # [B*k, k]
        tok_i = pad * pad_mask + tok_i * (1 - pad_mask)
        # Finished hypotheses continue with <pad>: the first copy keeps its score, the others are
        # pushed down by multiplying their log-prob by 1 + 10000 (NeMo: pad_mask[:, 1:] *= NEG_INF).
        pm = pad_mask.clone()
        pm[:, 1:] = pm[:, 1:] * int(M.MASK_VALUE)
        scores = scores + scores_i * (1 - pm).to(scores.dtype)
        lp = penalty(prefixes_len)
        scores = scores / lp
        scores, idx = torch.topk(scores.view(B, k * k), k, dim=1)
        scores = scores.reshape(-1, 1) * lp
        # Candidates c = src_beam * k + j.
        cand = torch.cat([prefixes.repeat_interleave(k, dim=0), tok_i.reshape(-1, 1)], dim=1)
        cand = cand.view(B, k * k, -1)
        prefixes = torch.gather(cand, 1, idx[:, :, None].expand(B, k, cand.shape[2])).reshape(B * k, -1)
        src_beam = (idx // k) + torch.arange(B)[:, None] * k
        state = state.select(src_beam.reshape(-1), same_items=True)
        not_end = (prefixes != eos) & (prefixes != pad)
        prefixes_len = 1 + not_end.sum(dim=1, keepdim=True).to(scores.dtype)
        pad_profile = (~not_end[:, -1:]).to(torch.int64)
        if int(pad_profile.sum()) == B * k:
            break
    final = scores / penalty(prefixes_len)
    best = torch.argmax(final.view(B, k), dim=1)
    out = [strip_output(prefixes[b * k + int(best[b])].tolist(), P, eos, pad) for b in range(B)]
    steps = torch.stack(first, dim=1) if first else None
    return out, steps
