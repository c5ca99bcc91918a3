"""SentencePiece models made the way NeMo makes them (create_spt_model), at any size.

Each tokenizer directory holds NeMo's three artifacts: tokenizer.model (the protobuf the engine
reads), tokenizer.vocab (spm's piece/score listing) and vocab.txt (NeMo's derived word list).
"""
import os
import random

import sentencepiece as spm

# Letters per language, so that the test vocabularies contain multi-byte UTF-8 pieces.
_ALPHABETS = {
    "en": "abcdefghijklmnopqrstuvwxyz",
    "de": "abcdefghijklmnopqrstuvwxyzäöüß",
    "es": "abcdefghijklmnopqrstuvwxyzñáéíóú",
    "fr": "abcdefghijklmnopqrstuvwxyzéèêàçùœ",
}
_EXTRA_ALPHABET = "abcdefghijklmnopqrstuvwxyzäöüßñáéíóúéèêàçùœšžčćđěřůłńśźżőűąęėįųāēīūļņķģõåæøþðăâîșțяюэшщжчцбвгдлпфыъь"


def synthetic_corpus(path, lang, n_lines, rng):
    """Pseudo-sentences from syllables of the language's letters; capitalised with punctuation so
    that pieces like ',' and upper-case letters exist, as in NeMo's PnC tokenizers."""
    letters = _ALPHABETS.get(lang, _EXTRA_ALPHABET)
    vowels = [c for c in letters if c in "aeiouyäöüáéíóúèêàùœåæøăâîыяюэ"] or list("aeiou")
    cons = [c for c in letters if c not in vowels]
    sylls = [c + v for c in cons for v in vowels] + vowels
    rng.shuffle(sylls)
    # Zipf-like word list so that frequent merges exist.
    words = ["".join(rng.choice(sylls[: 8 + i % 40]) for _ in range(1 + i % 4)) for i in range(3000)]
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n_lines):
            n = rng.randint(3, 12)
            ws = [words[min(int(rng.paretovariate(1.1)) - 1, len(words) - 1)] for _ in range(n)]
            ws[0] = ws[0].capitalize()
            if rng.random() < 0.3:
                ws[rng.randrange(n)] += ","
            f.write(" ".join(ws) + rng.choice([".", ".", "?", "!"]) + "\n")


def _train(text_path, out_dir, vocab_size, model_type, user_symbols=None, byte_fallback=False,
           hard_limit=False):
    """NeMo's create_spt_model flags: bos/eos disabled (so <unk> is id 0), no pad piece,
    hard_vocab_limit false, character_coverage 1.0."""
    os.makedirs(out_dir, exist_ok=True)
    # Relative paths: the trainer records them in trainer_spec, and the output must not depend
    # on the temporary directory's name.
    kwargs = dict(input=os.path.relpath(text_path, out_dir), model_prefix="tokenizer",
                  vocab_size=vocab_size, shuffle_input_sentence=True,
                  hard_vocab_limit=hard_limit, model_type=model_type, character_coverage=1.0,
                  bos_id=-1, eos_id=-1, num_threads=1, minloglevel=2)
    if user_symbols:
        kwargs["user_defined_symbols"] = user_symbols
    if byte_fallback:
        kwargs["byte_fallback"] = True
    cwd = os.getcwd()
    os.chdir(out_dir)
    try:
        spm.SentencePieceTrainer.train(**kwargs)
    finally:
        os.chdir(cwd)
    _write_nemo_vocab_txt(out_dir, set(user_symbols or []))
    sp = spm.SentencePieceProcessor(model_file=os.path.join(out_dir, "tokenizer.model"))
    return sp


def _write_nemo_vocab_txt(out_dir, specials):
    """vocab.txt as create_spt_model derives it from tokenizer.vocab."""
    specials = specials | {"<s>", "</s>", "<pad>", "<unk>"}
    out = []
    with open(os.path.join(out_dir, "tokenizer.vocab"), encoding="utf-8") as f:
        for line in f:
            piece = line.split("\t")[0]
            if piece in specials:
                continue
            tok = piece[1:] if piece.startswith("\u2581") else "##" + piece
            out.append(tok if tok else piece[0])
    with open(os.path.join(out_dir, "vocab.txt"), "w", encoding="utf-8") as f:
        f.writelines(t + "\n" for t in out)


def build_special(out_dir, symbols, vocab_size):
    """The spl_tokens model: one training line per special token, every token a user-defined
    symbol, so ids are <unk>=0, the symbols in order, then "▁"."""
    os.makedirs(out_dir, exist_ok=True)
    text = os.path.join(out_dir, "train_text.txt")
    with open(text, "w", encoding="utf-8") as f:
        f.write("\n".join(symbols))
    sp = _train(text, out_dir, vocab_size, "unigram", user_symbols=symbols)
    os.remove(text)
    got = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    expect = ["<unk>"] + list(symbols) + ["\u2581"]
    if got != expect:
        raise RuntimeError(f"special tokenizer in {out_dir}: unexpected pieces {got[:5]}..{got[-3:]}")
    return sp


def build_language(out_dir, lang, vocab_size, seed, model_type="bpe", user_symbols=None,
                   byte_fallback=False, n_lines=None):
    """One per-language text tokenizer (NeMo process_asr_text_tokenizer: spe_type bpe)."""
    os.makedirs(out_dir, exist_ok=True)
    text = os.path.join(out_dir, "train_text.txt")
    rng = random.Random(f"{seed}/{lang}")
    synthetic_corpus(text, lang, n_lines or max(2000, vocab_size * 8), rng)
    sp = _train(text, out_dir, vocab_size, model_type, user_symbols=user_symbols,
                byte_fallback=byte_fallback, hard_limit=True)
    os.remove(text)
    if sp.get_piece_size() != vocab_size:
        raise RuntimeError(f"{lang} tokenizer: got {sp.get_piece_size()} pieces, wanted {vocab_size}")
    return sp


def build_unified(out_dir, langs, symbols, vocab_size, seed, byte_fallback=True):
    """canary-1b-v2's single model: special tokens as user-defined symbols first, then text pieces
    learned from all languages."""
    os.makedirs(out_dir, exist_ok=True)
    text = os.path.join(out_dir, "train_text.txt")
    parts = []
    for lang in langs:
        p = os.path.join(out_dir, f"part_{lang}.txt")
        synthetic_corpus(p, lang, max(300, vocab_size // 2), random.Random(f"{seed}/{lang}"))
        parts.append(p)
    with open(text, "w", encoding="utf-8") as f:
        for p in parts:
            with open(p, encoding="utf-8") as g:
                f.write(g.read())
            os.remove(p)
    sp = _train(text, out_dir, vocab_size, "bpe", user_symbols=symbols, byte_fallback=byte_fallback,
                hard_limit=True)
    os.remove(text)
    if sp.get_piece_size() != vocab_size:
        raise RuntimeError(f"unified tokenizer: got {sp.get_piece_size()} pieces, wanted {vocab_size}")
    return sp
