/* canary-stt transcribe: files of any length in, transcripts out (text, json, verbose_json, srt,
 * vtt), through the long-audio pipeline over the engine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/decoder.h"
#include "base/file.h"
#include "base/log.h"
#include "base/strbuf.h"
#include "canary/canary.h"
#include "canary/canary_audio.h"
#include "canary/canary_pipeline.h"
#include "cli/cli.h"
#include "cli/engine_opts.h"
#include "hw/hw.h"
#include "hw/profile.h"
#include "pipeline/engine_recognizer.h"
#include "pipeline/fanout.h"
#include "pipeline/pipeline.h"

cn_status cn_cli_read_audio(const char *path, float **out, size_t *n, char *msg, size_t msg_size) {
    canary_audio *a;
    canary_status st = canary_audio_open_file(path, NULL, &a, msg, msg_size);
    if (st != CANARY_OK)
        return st;
    size_t cap = 1 << 16, len = 0;
    float *buf = malloc(sizeof(float) * cap);
    for (;;) {
        if (!buf) {
            canary_audio_close(a);
            snprintf(msg, msg_size, "%s: out of memory", path);
            return CANARY_ENOMEM;
        }
        if (cap - len < 16384) {
            float *nb = realloc(buf, sizeof(float) * cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                continue;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = 0;
        st = canary_audio_read(a, buf + len, cap - len, &got, msg, msg_size);
        if (st != CANARY_OK) {
            free(buf);
            canary_audio_close(a);
            return st;
        }
        if (got == 0)
            break;
        len += got;
    }
    canary_audio_close(a);
    *out = buf;
    *n = len;
    return CANARY_OK;
}

cn_status cn_cli_engine_params(const cn_config *cfg, const cn_cli_parsed *p, const cn_opt *opts,
                               const canary_model *model, canary_params *out, char *msg, size_t msg_size) {
    canary_params prm = canary_default_params(model);
    prm.source_lang = cfg->language;
    prm.target_lang = cfg->target_language[0] ? cfg->target_language : NULL;
    prm.pnc = cfg->pnc;
    prm.beam_size = cfg->beam_size;
    for (int i = 0; opts[i].name; i++) {
        const char *v = p->values[i];
        if (!v)
            continue;
        if (strcmp(opts[i].name, "lang") == 0)
            prm.source_lang = v;
        else if (strcmp(opts[i].name, "target-lang") == 0)
            prm.target_lang = v;
        else if (strcmp(opts[i].name, "beam") == 0) {
            char *end;
            long b = strtol(v, &end, 10);
            if (*end || b < 1 || b > 64) {
                snprintf(msg, msg_size, "--beam %s: expected an integer from 1 to 64", v);
                return CANARY_EINVAL;
            }
            prm.beam_size = (int)b;
        } else if (strcmp(opts[i].name, "search") == 0) {
            if (strcmp(v, "beam") == 0)
                prm.search = CANARY_SEARCH_BEAM;
            else if (strcmp(v, "greedy") == 0)
                prm.search = CANARY_SEARCH_GREEDY;
            else {
                snprintf(msg, msg_size, "--search %s: expected beam or greedy", v);
                return CANARY_EINVAL;
            }
        }
    }
    bool gpu = strncmp(canary_model_device(model), "cuda", 4) == 0;
    if (strcmp(cfg->precision, "bf16") == 0)
        prm.precision = CANARY_PRECISION_BF16;
    else if (strcmp(cfg->precision, "fp32") == 0)
        prm.precision = CANARY_PRECISION_FP32;
    else if (strcmp(cfg->precision, "auto") == 0) /* fp32 semantics; TF32 tensor cores on a GPU */
        prm.precision = gpu ? CANARY_PRECISION_TF32 : CANARY_PRECISION_FP32;
    else if (strcmp(cfg->precision, "tf32") == 0)
        prm.precision = CANARY_PRECISION_TF32;
    else if (strcmp(cfg->precision, "fp16") == 0 && gpu)
        prm.precision = CANARY_PRECISION_FP16;
    else if (strcmp(cfg->precision, "fp16") == 0) {
        snprintf(msg, msg_size, "--precision fp16: the model runs on the CPU (%s), which supports fp32 and bf16",
                 canary_model_device(model));
        return CANARY_EUNSUPPORTED;
    } else {
        snprintf(msg, msg_size, "--precision %s: expected auto, fp32, tf32, bf16 or fp16", cfg->precision);
        return CANARY_EINVAL;
    }
    if (strcmp(cfg->feature_semantics, "nemo-2.4") == 0)
        prm.features = CANARY_FEATURES_NEMO_2_4;
    else if (strcmp(cfg->feature_semantics, "nemo-2.5") == 0)
        prm.features = CANARY_FEATURES_NEMO_2_5;
    else if (strcmp(cfg->feature_semantics, "auto") != 0) {
        snprintf(msg, msg_size, "--feature-semantics %s: expected auto, nemo-2.4 or nemo-2.5", cfg->feature_semantics);
        return CANARY_EINVAL;
    }
    *out = prm;
    return CANARY_OK;
}

/* engine.max_batch = 0 (auto) on GPU `dev` ("cuda:N"): the hardware profile's batch for it
 * (docs/HARDWARE.md), sized for this run's precision and one executor, so that a large card is not
 * fed 8 chunks at a time (batch 8 to 128 is a ~10x throughput difference on an H200); a batch that
 * does not fit after all is halved by the engine adapter. 8 when the profile has no answer. */
static int gpu_auto_batch(const cn_config *cfg, const cn_hw_info *hw, const char *dev, canary_precision prec) {
    cn_hw_model m;
    cn_hw_model_resolve(cfg->model, cfg->cache_dir && cfg->cache_dir[0] ? cfg->cache_dir : NULL, &m, NULL, 0);
    cn_config c = *cfg; /* read-only copy: the strings stay cfg's */
    c.device = (char *)dev;
    c.precision = prec == CANARY_PRECISION_TF32   ? (char *)"tf32"
                  : prec == CANARY_PRECISION_BF16 ? (char *)"bf16"
                  : prec == CANARY_PRECISION_FP16 ? (char *)"fp16"
                                                  : (char *)"fp32";
    c.streams = 1;
    c.max_batch = 0;
    cn_profile *prof = calloc(1, sizeof *prof);
    cn_error err;
    cn_error_clear(&err);
    int batch = 8;
    if (!prof || cn_profile_compute(hw, &m, &c, prof, &err) != CANARY_OK) {
        CN_WARN("transcribe", "engine.max_batch auto on %s: no hardware profile (%s); using %d", dev,
                prof ? err.msg : "out of memory", batch);
        free(prof);
        return batch;
    }
    bool found = false;
    for (int i = 0; i < prof->n_devices && !found; i++) {
        const cn_device_profile *dp = &prof->dev[i];
        if (dp->kind == CN_DEV_CUDA && dp->usable && strcmp(dp->name, dev) == 0 && dp->max_batch > 0) {
            batch = dp->max_batch;
            found = true;
            CN_INFO("transcribe", "engine.max_batch auto on %s: %d chunks per batch (hardware profile: budget %llu "
                                  "MiB, %llu MiB per chunk; set engine.max_batch to override)", dev, batch,
                    (unsigned long long)(dp->budget_bytes >> 20), (unsigned long long)(dp->item_bytes >> 20));
        }
    }
    if (!found)
        CN_WARN("transcribe", "engine.max_batch auto on %s: the hardware profile has no batch for it; using %d", dev,
                batch);
    free(prof);
    return batch;
}

/* The GPUs besides `first` (the one the model loaded on) that engine.device asks for: the rest of
 * a list "cuda:a,b,...", or every detected GPU under "auto" and "cuda". *listed: named explicitly
 * (a replica that cannot load is then an error, not a warning). */
static int other_gpus(const cn_config *cfg, const cn_hw_info *hw, int first, int *idx, int cap, bool *listed) {
    int n = 0;
    *listed = strncmp(cfg->device, "cuda:", 5) == 0;
    if (*listed) {
        for (const char *q = strchr(cfg->device, ','); q && n < cap; q = strchr(q + 1, ',')) {
            int g = atoi(q + 1);
            bool seen = g == first;
            for (int k = 0; k < n && !seen; k++)
                seen = idx[k] == g;
            if (!seen)
                idx[n++] = g;
        }
    } else if (strcmp(cfg->device, "auto") == 0 || strcmp(cfg->device, "cuda") == 0) {
        for (int i = 0; i < hw->n_gpus && i < CN_HW_MAX_GPUS && n < cap; i++)
            if (hw->gpus[i].index != first)
                idx[n++] = hw->gpus[i].index;
    }
    return n;
}

/* ---- the transcribe subcommand: files -> pipeline (VAD, chunks, batches, merge) -> formats ---- */

/* Another GPU's copy of the model, for the fan-out (pipeline/fanout.h). */
typedef struct replica {
    canary_model *model;
    canary_context *ctx;
    cn_engine_recognizer er;
} replica;

/* The GPUs of a run besides the model's own: their replicas and the fan-out over all of them. */
typedef struct gpu_set {
    cn_fanout *fan; /* NULL: the run uses one device */
    replica extra[CN_FANOUT_MAX_PARTS - 1];
    int n_extra;
} gpu_set;

static void gpu_set_free(gpu_set *g) {
    for (int i = 0; i < g->n_extra; i++) {
        canary_context_free(g->extra[i].ctx);
        canary_model_free(g->extra[i].model);
    }
    free(g->fan);
    memset(g, 0, sizeof *g);
}

/* One replica's load on a thread of its own: the model on `name`, then a context. */
typedef struct replica_load {
    const char *path;
    canary_model_params params; /* .device = name */
    int threads;
    char name[32];
    canary_model *model;
    canary_context *ctx;
    canary_status status;
    char msg[512];
} replica_load;

static void *load_replica(void *arg) {
    replica_load *l = arg;
    l->status = canary_model_load(l->path, &l->params, &l->model, l->msg, sizeof l->msg);
    if (l->status == CANARY_OK && strcmp(canary_model_device(l->model), l->name) != 0) {
        snprintf(l->msg, sizeof l->msg, "the model loaded on %s instead", canary_model_device(l->model));
        l->status = CANARY_EDEVICE;
    }
    if (l->status == CANARY_OK)
        l->status = canary_context_create(l->model, l->threads, &l->ctx, l->msg, sizeof l->msg);
    if (l->status != CANARY_OK) {
        canary_model_free(l->model);
        l->model = NULL;
    }
    return NULL;
}

/* With the model on GPU `er0->model` and engine.device asking for more GPUs: loads a replica on
 * each (at the same time, one thread each: a large model takes seconds per GPU; the first load has
 * unpacked a compressed .nemo into the cache already) and replaces *rec with a fan-out over all of
 * them, *max_batch with the sum of their batches. Not when `audio_s` (the inputs' declared
 * duration, < 0 unknown) fits one batch of `batch0` chunks of `chunk_s` on the first GPU, unless
 * the GPUs are listed. Under auto/cuda a GPU that does not load is passed over with a warning; a
 * listed one fails. Returns 0, or 1 after printing why. */
static int gpu_set_open(gpu_set *g, const cn_config *cfg, const canary_model_params *mp, const cn_hw_info *hw,
                        const cn_engine_recognizer *er0, int batch0, double audio_s, double chunk_s,
                        cn_recognizer *rec, size_t *max_batch) {
    memset(g, 0, sizeof *g);
    const char *dev0 = canary_model_device(er0->model);
    int idx[CN_FANOUT_MAX_PARTS - 1];
    bool listed;
    int n_other = other_gpus(cfg, hw, atoi(dev0 + 5), idx, CN_FANOUT_MAX_PARTS - 1, &listed);
    if (n_other > 0 && !listed && audio_s >= 0 && audio_s <= batch0 * chunk_s) {
        CN_INFO("transcribe", "%.0f s of audio fit one batch on %s: the other %d GPU(s) are not loaded", audio_s,
                dev0, n_other);
        return 0;
    }
    if (n_other == 0)
        return 0;
    g->fan = calloc(1, sizeof *g->fan);
    if (!g->fan) {
        fprintf(stderr, "canary-stt transcribe: out of memory\n");
        return 1;
    }
    cn_fanout *fan = g->fan;
    fan->parts[0] = (cn_fanout_part){.rec = *rec, .weight = batch0};
    snprintf(fan->parts[0].name, sizeof fan->parts[0].name, "%s", dev0);
    fan->n_parts = 1;
    replica_load loads[CN_FANOUT_MAX_PARTS - 1];
    pthread_t threads[CN_FANOUT_MAX_PARTS - 1];
    bool started[CN_FANOUT_MAX_PARTS - 1] = {false};
    for (int k = 0; k < n_other; k++) {
        loads[k] = (replica_load){.path = cfg->model, .params = *mp, .threads = cfg->threads};
        snprintf(loads[k].name, sizeof loads[k].name, "cuda:%d", idx[k]);
        loads[k].params.device = loads[k].name;
        started[k] = pthread_create(&threads[k], NULL, load_replica, &loads[k]) == 0;
    }
    for (int k = 0; k < n_other; k++) {
        if (started[k])
            pthread_join(threads[k], NULL);
        else
            load_replica(&loads[k]);
    }
    int rc = 0;
    for (int k = 0; k < n_other; k++) {
        replica_load *l = &loads[k];
        if (l->status != CANARY_OK) {
            if (listed) {
                fprintf(stderr, "canary-stt transcribe: %s: %s\n", l->name, l->msg);
                rc = 1;
            } else {
                CN_WARN("transcribe", "%s: %s; it is not used", l->name, l->msg);
            }
            continue;
        }
        replica *r = &g->extra[g->n_extra++]; /* kept even when another fails: gpu_set_free frees it */
        r->model = l->model;
        r->ctx = l->ctx;
        r->er = (cn_engine_recognizer){.model = r->model, .ctx = r->ctx, .params = er0->params};
        cn_fanout_part *fp = &fan->parts[fan->n_parts++];
        cn_engine_recognizer_bind(&r->er, &fp->rec);
        fp->weight = cfg->max_batch > 0 ? cfg->max_batch : gpu_auto_batch(cfg, hw, l->name, er0->params.precision);
        snprintf(fp->name, sizeof fp->name, "%s", l->name);
    }
    if (rc || fan->n_parts == 1)
        return rc;
    cn_error err;
    cn_error_clear(&err);
    if (cn_fanout_bind(fan, rec, &err) != CANARY_OK) {
        fprintf(stderr, "canary-stt transcribe: %s\n", err.msg);
        return 1;
    }
    char split[256];
    size_t at = 0;
    *max_batch = 0;
    for (size_t i = 0; i < fan->n_parts; i++) {
        *max_batch += (size_t)fan->parts[i].weight;
        if (at < sizeof split)
            at += (size_t)snprintf(split + at, sizeof split - at, "%s%s %d", i ? ", " : "", fan->parts[i].name,
                                   fan->parts[i].weight);
    }
    CN_INFO("transcribe", "%zu GPUs: batches of up to %zu chunks, each split by share (%s)", fan->n_parts, *max_batch,
            split);
    return 0;
}

/* An input file as a pipeline source: opened at its first read, closed at its end, so that many
 * files never hold many decoders open at once. */
typedef struct file_source {
    const char *path;
    cn_audio_decoder *dec;
    bool done;
} file_source;

static cn_status file_read(void *self, float *buf, size_t max, size_t *got, cn_error *err) {
    file_source *f = self;
    *got = 0;
    if (f->done)
        return CANARY_OK;
    if (!f->dec)
        CN_TRY(cn_audio_open_file(f->path, NULL, &f->dec, err));
    CN_TRY(cn_audio_read(f->dec, buf, max, got, err));
    if (*got == 0) {
        cn_audio_close(f->dec);
        f->dec = NULL;
        f->done = true;
    }
    return CANARY_OK;
}

/* The duration a file's header declares (0 when unknown), for progress before decoding ends. */
static double probe_duration(const char *path) {
    cn_audio_decoder *d;
    cn_error err;
    if (cn_audio_open_file(path, NULL, &d, &err) != CANARY_OK)
        return 0; /* the real open reports the error */
    double s = cn_audio_get_info(d)->duration_s;
    cn_audio_close(d);
    return s > 0 ? s : 0;
}

static void fmt_secs(char *buf, size_t n, double s) {
    if (s < 0)
        snprintf(buf, n, "--");
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)s / 3600, (int)s / 60 % 60);
}

static bool progress_bar(const canary_progress *p, void *user) {
    (void)user;
    char eta[32];
    fmt_secs(eta, sizeof eta, p->eta_s);
    int filled = (int)(p->fraction * 30 + 0.5);
    fprintf(stderr, "\r[%.*s%.*s] %3d%%  chunks %zu/%zu  RTF %.3f  ETA %s   ", filled,
            "##############################", 30 - filled, "..............................",
            (int)(p->fraction * 100 + 0.5), p->chunks_done, p->chunks_total, p->rtf, eta);
    fflush(stderr);
    return true;
}

/* "<dir>/<file name without its extension>.<ext>" */
static char *output_path(const char *dir, const char *input, const char *ext) {
    const char *base = strrchr(input, '/');
    base = base ? base + 1 : input;
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    cn_strbuf sb;
    cn_sb_init(&sb);
    cn_sb_printf(&sb, "%s/%.*s.%s", dir, (int)len, base, ext);
    return cn_sb_steal(&sb);
}

/* Writes each transcript as soon as the pipeline has it (while later files are still running). */
typedef struct output_ctx {
    const char *outdir;
    canary_output_format fmt;
    char **names;
    size_t n;
    bool progress_bar; /* a bar is on the terminal: clear its line before printing */
    int rc;
} output_ctx;

static void write_transcript(size_t i, const canary_transcript *t, void *user) {
    output_ctx *o = user;
    char *doc = NULL;
    cn_error err;
    if (canary_transcript_render(t, o->fmt, &doc) != CANARY_OK) {
        fprintf(stderr, "canary-stt transcribe: %s: out of memory rendering the output\n", o->names[i]);
        o->rc = 1;
        return;
    }
    if (o->outdir) {
        char *path = output_path(o->outdir, o->names[i], canary_output_format_ext(o->fmt));
        if (!path || cn_write_file_atomic(path, doc, strlen(doc), &err) != CANARY_OK) {
            fprintf(stderr, "canary-stt transcribe: %s\n", path ? err.msg : "out of memory");
            o->rc = 1;
        }
        free(path);
        free(doc);
        return;
    }
    if (o->progress_bar)
        fprintf(stderr, "\r%100s\r", "");
    if (o->fmt == CANARY_FORMAT_TEXT && o->n > 1) {
        printf("%s: %s\n", o->names[i], t->text);
    } else {
        fputs(doc, stdout);
    }
    fflush(stdout);
    free(doc);
}

int cmd_transcribe(int argc, char **argv) {
    static const cn_opt opts[] = {
        {"lang", true, "source language (default: the `language` setting, en)"},
        {"target-lang", true, "target language for translation (default: same as --lang)"},
        {"beam", true, "beam width (default: the model's, 1)"},
        {"search", true, "beam (NeMo's default path) | greedy (NeMo's greedy strategy)"},
        {"format", true, "text | json | verbose_json | srt | vtt (default text)"},
        {"output-dir", true, "write <name>.<txt|json|srt|vtt> per input there instead of printing"},
        {"overlap", true, "seconds of overlap where a chunk must be cut inside speech (default 1)"},
        {"vad", true, "on (default: silence is skipped) | off (every sample is speech; a clip within the "
                      "model's limit is decoded whole, as NeMo's transcribe() does)"},
        {"timestamps", false, "word times from the model's own timestamp tokens (canary-1b-flash, "
                              "canary-180m-flash; chunks of at most 10 s unless engine.chunk_seconds is set, "
                              "as NeMo does; without it word times are approximate)"},
        {"read-ahead", true, "on (default: decoding and chunk planning run on their own thread, ahead of "
                             "inference) | off (in turn with inference; same results)"},
        {0}};
    enum { O_FORMAT = 4, O_OUTDIR = 5, O_OVERLAP = 6, O_VAD = 7, O_TIMESTAMPS = 8, O_READ_AHEAD = 9 };
    cn_config cfg;
    cn_cli_parsed p;
    int start_rc = cn_cli_start("transcribe", argc, argv, opts, &cfg, &p);
    if (start_rc)
        return start_rc;
    cn_error err;
    cn_error_clear(&err);
    if (p.help || p.n_pos == 0) {
        FILE *o = p.help ? stdout : stderr;
        fprintf(o, "Usage: canary-stt transcribe --model M.nemo [--lang en] [--target-lang de] [--pnc yes|no]\n"
                   "         [--beam N] [--search beam|greedy] [--device cpu|cuda|cuda:N[,M...]|auto]\n"
                   "         [--precision fp32|tf32|bf16|fp16] [--threads N]\n"
                   "         [--format text|json|verbose_json|srt|vtt] [--output-dir DIR] [--vad on|off]\n"
                   "         [--timestamps] [--read-ahead on|off] FILE...\n\n"
                   "Transcribes (or translates) audio/video files of any length: silence is skipped, speech\n"
                   "is cut into chunks of at most the model's limit (40 s) at pauses, chunks of all files are\n"
                   "batched together, and each file gets one transcript with timestamps. With several GPUs\n"
                   "(auto, cuda, or a list) every batch is split over a model replica on each.\n\n");
        if (p.help)
            cn_cli_print_opts(opts);
        cn_config_free(&cfg);
        return p.help ? 0 : 2;
    }
    cn_cli_setup_logging(&cfg, &err);
    canary_output_format fmt = CANARY_FORMAT_TEXT;
    if (p.values[O_FORMAT] && !canary_output_format_parse(p.values[O_FORMAT], &fmt)) {
        fprintf(stderr, "canary-stt transcribe: --format %s: expected text, json, verbose_json, srt or vtt\n",
                p.values[O_FORMAT]);
        cn_config_free(&cfg);
        return 2;
    }
    const char *outdir = p.values[O_OUTDIR];
    if (!outdir && p.n_pos > 1 && (fmt == CANARY_FORMAT_SRT || fmt == CANARY_FORMAT_VTT)) {
        fprintf(stderr, "canary-stt transcribe: --format %s with several files needs --output-dir\n",
                canary_output_format_name(fmt));
        cn_config_free(&cfg);
        return 2;
    }
    cn_pipeline_params pp;
    cn_pipeline_params_default(&pp);
    if (p.values[O_OVERLAP]) {
        char *end;
        pp.overlap_s = strtod(p.values[O_OVERLAP], &end);
        if (*end || !(pp.overlap_s >= 0 && pp.overlap_s <= 10)) {
            fprintf(stderr, "canary-stt transcribe: --overlap %s: expected seconds from 0 to 10\n",
                    p.values[O_OVERLAP]);
            cn_config_free(&cfg);
            return 2;
        }
    }
    if (p.values[O_VAD]) {
        if (strcmp(p.values[O_VAD], "on") != 0 && strcmp(p.values[O_VAD], "off") != 0) {
            fprintf(stderr, "canary-stt transcribe: --vad %s: expected on or off\n", p.values[O_VAD]);
            cn_config_free(&cfg);
            return 2;
        }
        pp.vad.disabled = strcmp(p.values[O_VAD], "off") == 0;
    }
    if (p.values[O_READ_AHEAD]) {
        if (strcmp(p.values[O_READ_AHEAD], "on") != 0 && strcmp(p.values[O_READ_AHEAD], "off") != 0) {
            fprintf(stderr, "canary-stt transcribe: --read-ahead %s: expected on or off\n", p.values[O_READ_AHEAD]);
            cn_config_free(&cfg);
            return 2;
        }
        pp.sequential = strcmp(p.values[O_READ_AHEAD], "off") == 0;
    }
    char msg[1024];
    canary_model *model = NULL;
    canary_context *ctx = NULL;
    canary_model_params mp = canary_model_default_params();
    mp.cache_dir = cfg.cache_dir[0] ? cfg.cache_dir : NULL;
    mp.device = cfg.device;
    int rc = 0;
    file_source *fs = NULL;
    cn_pcm_source *src = NULL;
    canary_transcript *tr = NULL;
    gpu_set gpus = {0}; /* the other GPUs, when the run uses several */
    if (cn_cli_check_device(&cfg, "transcribe") != CANARY_OK || cn_cli_resolve_model(&cfg, "transcribe") != CANARY_OK) {
        cn_config_free(&cfg);
        return 1;
    }
    if (canary_model_load(cfg.model, &mp, &model, msg, sizeof msg) != CANARY_OK) {
        fprintf(stderr, "canary-stt transcribe: %s\n", msg);
        cn_config_free(&cfg);
        return 1;
    }
    cn_engine_recognizer er = {.model = model};
    if (cn_cli_engine_params(&cfg, &p, opts, model, &er.params, msg, sizeof msg) != CANARY_OK) {
        fprintf(stderr, "canary-stt transcribe: %s\n", msg);
        rc = 2;
        goto out;
    }
    if (p.values[O_TIMESTAMPS]) {
        if (!canary_model_has_timestamps(model)) {
            fprintf(stderr,
                    "canary-stt transcribe: --timestamps: %s has no timestamp tokens (canary-1b-flash and "
                    "canary-180m-flash have them; canary-1b-v2's CTC aligner is not implemented)\n",
                    canary_model_variant(model));
            rc = 2;
            goto out;
        }
        er.params.timestamps = true;
    }
    size_t n = (size_t)p.n_pos;
    fs = calloc(n, sizeof *fs);
    src = calloc(n, sizeof *src);
    tr = calloc(n, sizeof *tr);
    if (!fs || !src || !tr) {
        fprintf(stderr, "canary-stt transcribe: out of memory\n");
        rc = 1;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        fs[i].path = p.pos[i];
        src[i] = (cn_pcm_source){.self = &fs[i], .name = p.pos[i], .expected_s = probe_duration(p.pos[i]),
                                 .read = file_read};
    }
    if (canary_context_create(model, cfg.threads, &ctx, msg, sizeof msg) != CANARY_OK) {
        fprintf(stderr, "canary-stt transcribe: %s\n", msg);
        rc = 1;
        goto out;
    }
    er.ctx = ctx;
    cn_recognizer rec;
    cn_engine_recognizer_bind(&er, &rec);
    pp.chunk_max_s = cfg.chunk_seconds;
    if (er.params.timestamps && !(pp.chunk_max_s > 0))
        pp.chunk_max_s = CN_CANARY_TIMESTAMP_CHUNK_S; /* unless engine.chunk_seconds says otherwise */
    /* Batches: engine.max_batch, or auto (8 on the CPU, the hardware profile's batch on a GPU). With
     * several GPUs each gets a replica and a share of every batch (pipeline/fanout.h). */
    const char *dev0 = canary_model_device(model);
    bool on_gpu = strncmp(dev0, "cuda", 4) == 0;
    cn_hw_info hw;
    if (on_gpu)
        cn_hw_detect(NULL, &hw);
    int batch0 = cfg.max_batch > 0 ? cfg.max_batch : on_gpu ? gpu_auto_batch(&cfg, &hw, dev0, er.params.precision) : 8;
    pp.max_batch = (size_t)batch0;
    if (on_gpu) {
        double audio_s = 0;
        for (size_t i = 0; i < n && audio_s >= 0; i++)
            audio_s = src[i].expected_s > 0 ? audio_s + src[i].expected_s : -1; /* -1: unknown */
        double chunk_s = pp.chunk_max_s > 0 && pp.chunk_max_s < rec.max_chunk_s ? pp.chunk_max_s : rec.max_chunk_s;
        if (gpu_set_open(&gpus, &cfg, &mp, &hw, &er, batch0, audio_s, chunk_s, &rec, &pp.max_batch) != 0) {
            rc = 1;
            goto out;
        }
    }
    pp.max_batch_s = (double)pp.max_batch * rec.max_chunk_s;
    bool translate = er.params.target_lang && strcmp(er.params.target_lang, er.params.source_lang) != 0;
    pp.task = translate ? "translate" : "transcribe";
    pp.language = translate ? er.params.target_lang : er.params.source_lang;
    if (isatty(STDERR_FILENO) && cn_log_get_level() <= CN_LOG_WARN) {
        pp.progress = progress_bar;
    }
    if (outdir && mkdir(outdir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "canary-stt transcribe: cannot create --output-dir %s: %s\n", outdir, strerror(errno));
        rc = 1;
        goto out;
    }
    output_ctx oc = {.outdir = outdir, .fmt = fmt, .names = p.pos, .n = n, .progress_bar = pp.progress != NULL};
    pp.on_transcript = write_transcript;
    pp.transcript_user = &oc;
    cn_status st = cn_pipeline_run(&rec, &pp, src, n, tr, &err);
    if (pp.progress)
        fputc('\n', stderr);
    for (size_t i = 0; gpus.fan && gpus.fan->n_parts > 1 && i < gpus.fan->n_parts; i++)
        CN_INFO("transcribe", "%s: %zu chunks in %zu batches, %.1f s busy%s", gpus.fan->parts[i].name,
                gpus.fan->parts[i].chunks, gpus.fan->parts[i].batches, gpus.fan->parts[i].busy_s,
                gpus.fan->parts[i].retired ? " (retired after a device error)" : "");
    if (st != CANARY_OK) {
        fprintf(stderr, "canary-stt transcribe: %s\n", err.msg);
        rc = 1;
        goto out;
    }
    rc = oc.rc;
out:
    for (size_t i = 0; tr && i < (size_t)p.n_pos; i++)
        canary_transcript_free(&tr[i]);
    for (size_t i = 0; fs && i < (size_t)p.n_pos; i++)
        cn_audio_close(fs[i].dec);
    free(tr);
    free(src);
    free(fs);
    gpu_set_free(&gpus);
    canary_context_free(ctx);
    canary_model_free(model);
    cn_config_free(&cfg);
    return rc;
}
