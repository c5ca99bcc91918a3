"""Decoder prompts (spec §6.6): `canary` (canary-1b, 5 tokens) and `canary2` (flash, v2, 9 tokens)."""


def _yes(v):
    return v is True or str(v).lower() in ("yes", "true", "1", "pnc", "itn", "timestamp", "diarize")


def prompt_tokens(prompt_format, source_lang="en", target_lang=None, pnc=True, itn=False, timestamp=False,
                  diarize=False, task=None):
    """The special-token strings of the prompt, in order."""
    tgt = target_lang or source_lang
    if prompt_format == "canary":
        if task is None:
            task = "transcribe" if tgt == source_lang else "translate"
        return ["<|startoftranscript|>", f"<|{source_lang}|>", f"<|{task}|>", f"<|{tgt}|>",
                "<|pnc|>" if _yes(pnc) else "<|nopnc|>"]
    if prompt_format == "canary2":
        return ["<|startofcontext|>", "<|startoftranscript|>", "<|emo:undefined|>", f"<|{source_lang}|>",
                f"<|{tgt}|>", "<|pnc|>" if _yes(pnc) else "<|nopnc|>", "<|itn|>" if _yes(itn) else "<|noitn|>",
                "<|timestamp|>" if _yes(timestamp) else "<|notimestamp|>",
                "<|diarize|>" if _yes(diarize) else "<|nodiarize|>"]
    raise ValueError(f"unknown prompt_format {prompt_format!r} (expected canary or canary2)")


def prompt_ids(tokenizer, prompt_format, v2_style="nemo", **opts):
    """Ids of the prompt. Aggregate tokenizers: each special token looked up in spl_tokens (NeMo's
    _tokenize_special_prompt, no SentencePiece encode). Unified tokenizer (canary-1b-v2):
      v2_style="nemo": SentencePiece encode of the concatenated prompt string, as NeMo's
        _apply_tokenizer does; with add_dummy_prefix this yields a leading '▁' piece (10 ids);
      v2_style="hf": the 9 special ids only, as transformers' CanaryProcessor builds them."""
    toks = prompt_tokens(prompt_format, **opts)
    if tokenizer.kind == "agg" or v2_style == "hf":
        return [tokenizer.special_id(t) for t in toks]
    if v2_style != "nemo":
        raise ValueError(f"unknown v2_style {v2_style!r}")
    sp = tokenizer.blocks[0][2]
    return list(sp.encode("".join(toks)))
