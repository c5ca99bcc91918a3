"""Dimensions and special-token inventories of the four Canary releases.

Sources (see docs/TEST_MODELS.md and ../shared research spec §2.3, §6):
  - canary-1b special tokens: NeMo v1.23 CanaryTokenizer (SPECIAL_TOKENS + 18 unused, vocab 32).
  - canary2 special tokens: NeMo scripts/speech_recognition/canary/build_canary_2_special_tokenizer.py
    with CanaryTokenizer.build_special_tokenizer (DEFAULT_TOKENS prepended, de-duplicated, 1152 pieces).
"""

# canary-1b (NeMo 1.23): user-defined symbols of the 32-piece spl_tokens model, in order.
CANARY1_SPECIAL = (
    ["<pad>", "<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|de|>", "<|es|>", "<|fr|>",
     "<|transcribe|>", "<|translate|>", "<|nopnc|>", "<|pnc|>", "<|nospeech|>"]
    + [f"<|spltoken{i}|>" for i in range(18)])

# CanaryTokenizer.DEFAULT_TOKENS (NeMo 2.x), prepended by build_special_tokenizer.
CANARY2_DEFAULT_TOKENS = ["<|nospeech|>", "<pad>", "<|endoftext|>", "<|startoftranscript|>",
                          "<|pnc|>", "<|nopnc|>"]

CANARY2_GENERIC = ["<|endoftext|>", "<|startoftranscript|>", "<|nopnc|>", "<|pnc|>", "<|nospeech|>",
                   "<|startofcontext|>", "<|itn|>", "<|noitn|>", "<|timestamp|>", "<|notimestamp|>",
                   "<|diarize|>", "<|nodiarize|>", "<|spkchange|>", "<|audioseparator|>",
                   "<|emo:undefined|>", "<|emo:neutral|>", "<|emo:happy|>", "<|emo:sad|>",
                   "<|emo:angry|>"]

# The 183 ISO 639-1 codes of the canary2 builder, in the builder's order (alphabetical by English
# language name, which is why e.g. "sq" follows "ak").
CANARY2_ISO_LANGS = """
aa ab af ak sq am ar an hy as av ae ay az bm ba eu be bn bi bs br bg my ca ch ce ny zh cu cv kw co cr
hr cs da dv nl dz en eo et ee fo fj fi fr fy ff gd gl lg ka de el kl gn gu ht ha he hz hi ho hu is io
ig id ia ie iu ik ga it ja jv kn kr ks kk km ki rw ky kv kg ko kj ku lo la lv li ln lt lu lb mk mg ms
ml mt gv mi mr mh mn na nv nd nr ng ne no nb nn oc oj or om os pi ps fa pl pt pa qu ro rm rn ru se sm
sg sa sc sr sn sd si sk sl so st es su sw ss sv tl ty tg ta tt te th bo ti to ts tn tr tk tw ug uk ur
uz ve vi vo wa cy wo xh ii yi yo za zu""".split()
assert len(CANARY2_ISO_LANGS) == 183


def canary2_special_tokens():
    """User-defined symbols of the canary2 spl_tokens model in id order (id = index + 1; id 0 is
    <unk> and the last id, 1151, is the "▁" piece the trainer adds)."""
    tokens = (CANARY2_GENERIC + ["<|unklang|>"] + [f"<|{c}|>" for c in CANARY2_ISO_LANGS]
              + [f"<|{i}|>" for i in range(900)] + [f"<|spk{i}|>" for i in range(16)])
    total = len(tokens) + 3  # + <pad>, <unk>, ▁ (builder's own count)
    padded = (total + 63) // 64 * 64
    tokens += [f"<|spltoken{i}|>" for i in range(padded - total)]
    merged = list(dict.fromkeys(CANARY2_DEFAULT_TOKENS + tokens))
    assert len(merged) + 2 == 1152, len(merged)
    return merged


# 25 languages of canary-1b-v2 (model card order).
V2_LANGS = ["bg", "hr", "cs", "da", "nl", "en", "et", "fi", "fr", "de", "el", "hu", "it", "lv", "lt",
            "mt", "pl", "pt", "ro", "sk", "sl", "es", "sv", "ru", "uk"]

AGG_LANGS = ["en", "de", "es", "fr"]

# Real dimensions (spec §2.3). "tiny" keeps every structural feature at toy sizes.
LAYOUTS = {
    "canary-180m-flash": {
        "prompt_format": "canary2", "tokenizer": "agg2", "nemo_version": "2.3.0rc0",
        "full": dict(enc_layers=17, d_enc=512, enc_heads=8, sub_ch=256, dec_layers=4, d_dec=1024,
                     dec_heads=8, max_seq=1024, lang_vocab=1024),
        "tiny": dict(enc_layers=2, d_enc=48, enc_heads=4, sub_ch=32, dec_layers=2, d_dec=64,
                     dec_heads=4, max_seq=256, lang_vocab=128),
    },
    "canary-1b-flash": {
        "prompt_format": "canary2", "tokenizer": "agg2", "nemo_version": "2.2.0",
        "full": dict(enc_layers=32, d_enc=1024, enc_heads=8, sub_ch=256, dec_layers=4, d_dec=1024,
                     dec_heads=8, max_seq=1024, lang_vocab=1024),
        "tiny": dict(enc_layers=3, d_enc=64, enc_heads=4, sub_ch=32, dec_layers=2, d_dec=64,
                     dec_heads=4, max_seq=256, lang_vocab=128),
    },
    "canary-1b": {
        "prompt_format": "canary", "tokenizer": "agg1", "nemo_version": "1.23.0",
        "full": dict(enc_layers=24, d_enc=1024, enc_heads=8, sub_ch=256, dec_layers=24, d_dec=1024,
                     dec_heads=8, max_seq=512, lang_vocab=1024),
        "tiny": dict(enc_layers=2, d_enc=64, enc_heads=4, sub_ch=32, dec_layers=3, d_dec=64,
                     dec_heads=4, max_seq=256, lang_vocab=128),
    },
    "canary-1b-v2": {
        "prompt_format": "canary2", "tokenizer": "unified", "nemo_version": "2.5.0",
        "full": dict(enc_layers=32, d_enc=1024, enc_heads=8, sub_ch=256, dec_layers=8, d_dec=1024,
                     dec_heads=8, max_seq=1024, unified_vocab=16384,
                     ctc_layers=24, ctc_d=1024),
        "tiny": dict(enc_layers=2, d_enc=64, enc_heads=4, sub_ch=32, dec_layers=2, d_dec=64,
                     dec_heads=4, max_seq=256, unified_vocab=1900,
                     ctc_layers=1, ctc_d=32),
    },
}
