"""A parameter-only mirror of NeMo's EncDecMultiTaskModel module tree.

Module and attribute names, registration order, parameter/buffer kinds and shapes follow NeMo
(ConformerEncoder / ConvSubsampling / ConformerLayer / RelPositionMultiHeadAttention /
ConformerConvolution, TransformerDecoderNM / TransformerEmbedding / FixedPositionalEncoding /
TransformerDecoderBlock / MultiHeadAttention / PositionWiseFF, TokenClassifier /
MultiLayerPerceptron), so that model.state_dict() -- including its _metadata -- and torch.save
produce the same key names, order, dtypes and storage sharing as a real checkpoint. No forward().
"""
import math

import torch
from torch import nn


class FilterbankFeatures(nn.Module):
    def __init__(self, n_mels=128, n_fft=512, win_length=400, sample_rate=16000):
        super().__init__()
        window = torch.hann_window(win_length, periodic=False)
        self.register_buffer("window", window)
        import torchaudio.functional as taf
        fb = taf.melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate,
                                 norm="slaney", mel_scale="slaney")  # librosa-style [257, 128]
        self.register_buffer("fb", fb.t().contiguous().unsqueeze(0).float())  # [1, 128, 257]


class AudioToMelSpectrogramPreprocessor(nn.Module):
    def __init__(self):
        super().__init__()
        self.featurizer = FilterbankFeatures()


class ConvSubsampling(nn.Module):
    """dw_striding, factor 8: conv.{0,2,3,5,6} (ReLUs at 1,4,7 have no parameters), out."""

    def __init__(self, feat_in, d_model, ch):
        super().__init__()
        layers = [nn.Conv2d(1, ch, 3, 2, 1), nn.ReLU()]
        for _ in range(2):
            layers += [nn.Conv2d(ch, ch, 3, 2, 1, groups=ch), nn.Conv2d(ch, ch, 1), nn.ReLU()]
        self.conv = nn.Sequential(*layers)
        self.out = nn.Linear(ch * (feat_in // 8), d_model)


class RelPositionalEncoding(nn.Module):
    """Its table `pe` is a non-persistent buffer: not in the checkpoint."""


class ConformerFeedForward(nn.Module):
    def __init__(self, d, d_ff, bias=True):
        super().__init__()
        self.linear1 = nn.Linear(d, d_ff, bias=bias)
        self.activation = nn.SiLU()
        self.dropout = nn.Dropout(0.0)
        self.linear2 = nn.Linear(d_ff, d, bias=bias)


class ConformerConvolution(nn.Module):
    def __init__(self, d, kernel, bias=True):
        super().__init__()
        self.pointwise_conv1 = nn.Conv1d(d, 2 * d, 1, bias=bias)
        self.depthwise_conv = nn.Conv1d(d, d, kernel, padding=(kernel - 1) // 2, groups=d, bias=bias)
        self.batch_norm = nn.BatchNorm1d(d)
        self.activation = nn.SiLU()
        self.pointwise_conv2 = nn.Conv1d(d, d, 1, bias=bias)


class RelPositionMultiHeadAttention(nn.Module):
    def __init__(self, d, heads, bias=True):
        super().__init__()
        dk = d // heads
        # MultiHeadAttention.__init__ first, then the rel-pos additions; pos_bias_u/v are direct
        # Parameters, so state_dict lists them before the child Linears.
        self.linear_q = nn.Linear(d, d, bias=bias)
        self.linear_k = nn.Linear(d, d, bias=bias)
        self.linear_v = nn.Linear(d, d, bias=bias)
        self.linear_out = nn.Linear(d, d, bias=bias)
        self.dropout = nn.Dropout(0.0)
        self.linear_pos = nn.Linear(d, d, bias=False)
        self.pos_bias_u = nn.Parameter(torch.zeros(heads, dk))
        self.pos_bias_v = nn.Parameter(torch.zeros(heads, dk))


class ConformerLayer(nn.Module):
    def __init__(self, d, d_ff, heads, kernel, bias=True):
        super().__init__()
        self.norm_feed_forward1 = nn.LayerNorm(d)
        self.feed_forward1 = ConformerFeedForward(d, d_ff, bias)
        self.norm_conv = nn.LayerNorm(d)
        self.conv = ConformerConvolution(d, kernel, bias)
        self.norm_self_att = nn.LayerNorm(d)
        self.self_attn = RelPositionMultiHeadAttention(d, heads, bias)
        self.norm_feed_forward2 = nn.LayerNorm(d)
        self.feed_forward2 = ConformerFeedForward(d, d_ff, bias)
        self.dropout = nn.Dropout(0.0)
        self.norm_out = nn.LayerNorm(d)


class ConformerEncoder(nn.Module):
    def __init__(self, feat_in, n_layers, d, heads, sub_ch, ff_factor=4, kernel=9, bias=True):
        super().__init__()
        self.pre_encode = ConvSubsampling(feat_in, d, sub_ch)
        self.pos_enc = RelPositionalEncoding()
        self.layers = nn.ModuleList(ConformerLayer(d, d * ff_factor, heads, kernel, bias)
                                    for _ in range(n_layers))


class FixedPositionalEncoding(nn.Module):
    def __init__(self, hidden, max_len):
        super().__init__()
        pos_enc = torch.zeros(max_len, hidden)
        position = torch.arange(0.0, max_len).unsqueeze(1)
        coef = -math.log(10000.0) / hidden
        div_term = torch.exp(coef * torch.arange(0.0, hidden, 2))
        pos_enc[:, 0::2] = torch.sin(position * div_term)
        pos_enc[:, 1::2] = torch.cos(position * div_term)
        pos_enc.div_(math.sqrt(hidden))
        self.register_buffer("pos_enc", pos_enc)  # persistent: stored in the checkpoint


class TransformerEmbedding(nn.Module):
    def __init__(self, vocab, hidden, max_len):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, hidden, padding_idx=0)
        self.position_embedding = FixedPositionalEncoding(hidden, max_len)
        self.layer_norm = nn.LayerNorm(hidden, eps=1e-5)
        self.dropout = nn.Dropout(0.0)


class MultiHeadAttention(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.query_net = nn.Linear(hidden, hidden)
        self.key_net = nn.Linear(hidden, hidden)
        self.value_net = nn.Linear(hidden, hidden)
        self.out_projection = nn.Linear(hidden, hidden)
        self.attn_dropout = nn.Dropout(0.0)
        self.layer_dropout = nn.Dropout(0.0)


class PositionWiseFF(nn.Module):
    def __init__(self, hidden, inner):
        super().__init__()
        self.dense_in = nn.Linear(hidden, inner)
        self.dense_out = nn.Linear(inner, hidden)
        self.layer_dropout = nn.Dropout(0.0)


class TransformerDecoderBlock(nn.Module):
    def __init__(self, hidden, inner):
        super().__init__()
        self.layer_norm_1 = nn.LayerNorm(hidden, eps=1e-5)
        self.first_sub_layer = MultiHeadAttention(hidden)
        self.layer_norm_2 = nn.LayerNorm(hidden, eps=1e-5)
        self.second_sub_layer = MultiHeadAttention(hidden)
        self.layer_norm_3 = nn.LayerNorm(hidden, eps=1e-5)
        self.third_sub_layer = PositionWiseFF(hidden, inner)


class TransformerDecoder(nn.Module):
    def __init__(self, n_layers, hidden, inner):
        super().__init__()
        self.layers = nn.ModuleList(TransformerDecoderBlock(hidden, inner) for _ in range(n_layers))
        self.final_layer_norm = nn.LayerNorm(hidden, eps=1e-5)


class TransformerDecoderNM(nn.Module):
    def __init__(self, vocab, hidden, inner, n_layers, max_len):
        super().__init__()
        self._embedding = TransformerEmbedding(vocab, hidden, max_len)
        self._decoder = TransformerDecoder(n_layers, hidden, inner)


class MultiLayerPerceptron(nn.Module):
    def __init__(self, hidden, classes):
        super().__init__()
        self.layer0 = nn.Linear(hidden, classes)


class TokenClassifier(nn.Module):
    def __init__(self, hidden, classes):
        super().__init__()
        self.dropout = nn.Dropout(0.0)
        self.mlp = MultiLayerPerceptron(hidden, classes)


class EncDecMultiTaskModel(nn.Module):
    def __init__(self, d_enc, enc_layers, enc_heads, sub_ch, d_dec, dec_layers, vocab, max_len):
        super().__init__()
        self.preprocessor = AudioToMelSpectrogramPreprocessor()
        self.encoder = ConformerEncoder(128, enc_layers, d_enc, enc_heads, sub_ch)
        self.encoder_decoder_proj = nn.Linear(d_enc, d_dec) if d_enc != d_dec else nn.Identity()
        self.transf_decoder = TransformerDecoderNM(vocab, d_dec, 4 * d_dec, dec_layers, max_len)
        self.log_softmax = TokenClassifier(d_dec, vocab)
        # Weight tying exactly as NeMo does it: the head Linear's weight *is* the embedding's.
        self.log_softmax.mlp.layer0.weight = self.transf_decoder._embedding.token_embedding.weight


class ConvASRDecoder(nn.Module):
    """CTC head of the auxiliary timestamps model: decoder_layers.0 = Conv1d(d, vocab+1, 1)."""

    def __init__(self, d, classes):
        super().__init__()
        self.decoder_layers = nn.Sequential(nn.Conv1d(d, classes, 1))


class EncDecCTCModelBPE(nn.Module):
    def __init__(self, d, n_layers, heads, sub_ch, vocab):
        super().__init__()
        self.preprocessor = AudioToMelSpectrogramPreprocessor()
        # Parakeet-style FastConformer: use_bias false (no Linear/Conv1d biases in the layers).
        self.encoder = ConformerEncoder(128, n_layers, d, heads, sub_ch, bias=False)
        self.decoder = ConvASRDecoder(d, vocab + 1)


# Query/key/position projections get larger weights so that attention is peaked rather than a
# near-uniform average (which adds the same vector to every frame / step).
ATTENTION_SCORE_GAIN = 2.0
_SCORE_PROJECTIONS = ("linear_q", "linear_k", "linear_pos", "query_net", "key_net")

# Weights whose input is the output of a ReLU/Swish/GLU (module-name suffixes).
_AFTER_ACTIVATION = ("pre_encode.out", "pre_encode.conv.2", "pre_encode.conv.3", "pre_encode.conv.5",
                     "pre_encode.conv.6", "linear2", "pointwise_conv2", "depthwise_conv", "dense_out")


def randomize(model, seed, eos_id=None, eos_bias=0.0):
    """Seeded weights scaled so activations stay O(1) through every layer: 1/sqrt(fan_in) for
    matrices, LayerNorm/BatchNorm gains near 1, positive running variances, small biases.
    Fixed buffers (mel filterbank, window, decoder positional table) are left as NeMo builds them."""
    g = torch.Generator().manual_seed(seed)

    def normal(t, std, mean=0.0):
        with torch.no_grad():
            t.copy_(torch.randn(t.shape, generator=g) * std + mean)

    seen = set()
    for name, mod in model.named_modules():
        for pname, p in list(mod.named_parameters(recurse=False)):
            if id(p) in seen:
                continue
            seen.add(id(p))
            if name == "transf_decoder._embedding.layer_norm":
                # A small embedding gain keeps the current token from dominating the residual
                # stream up to the tied head, which otherwise makes every greedy step repeat it.
                normal(p, 0.02 if pname == "weight" else 0.01, 0.2 if pname == "weight" else 0.0)
            elif isinstance(mod, (nn.LayerNorm, nn.BatchNorm1d)):
                normal(p, 0.1, 1.0 if pname == "weight" else 0.0)
                if pname == "bias":
                    normal(p, 0.05)
            elif pname.startswith("pos_bias"):
                normal(p, 0.05)
            elif pname == "bias":
                normal(p, 0.02)
            elif isinstance(mod, nn.Embedding):
                # Tied with the head: row norms set the logit spread (about 2 units).
                normal(p, 2.0 / math.sqrt(p.shape[1]))
            else:
                fan_in = p[0].numel()
                gain = ATTENTION_SCORE_GAIN if name.endswith(_SCORE_PROJECTIONS) else 1.0
                normal(p, gain / math.sqrt(fan_in))
                if name.endswith(_AFTER_ACTIVATION):
                    # ReLU/Swish outputs have a positive mean; zero-mean rows keep it from adding
                    # the same vector at every time step, which would make the encoder output
                    # nearly audio-independent and the decoder repeat one token.
                    with torch.no_grad():
                        flat = p.view(p.shape[0], -1)
                        flat.sub_(flat.mean(dim=1, keepdim=True))
                        flat.mul_(1.0 / math.sqrt(1.0 - 1.0 / flat.shape[1]))
        if isinstance(mod, nn.BatchNorm1d):
            with torch.no_grad():
                normal(mod.running_mean, 0.1)
                mod.running_var.copy_(0.5 + torch.rand(mod.running_var.shape, generator=g))
                mod.num_batches_tracked.fill_(100000 + int(torch.randint(0, 100000, (1,), generator=g)))
    if eos_id is not None and eos_bias:
        with torch.no_grad():
            model.log_softmax.mlp.layer0.bias[eos_id] += eos_bias
