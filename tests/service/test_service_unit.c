/* Unit tests of the service's pure parts: OpenAPI/route agreement, response formats, request
 * parameters (incl. values arriving in pieces), and the SQLite job store. */
#include "test_util.h"

#include <ctype.h>
#include <jansson.h>

#include "base/file.h"
#include "service/request.h"
#include "service/service.h"
#include "service/store.h"
#include "service/transcriber.h"

/* Every route is documented in openapi.json, and every documented operation is a route. */
static void test_openapi_matches_routes(void **state) {
    json_error_t je;
    json_t *doc = json_loads(cn_openapi_json, 0, &je);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.0.3");
    json_t *paths = json_object_get(doc, "paths");
    for (int i = 0; i < cn_service_n_routes; i++) {
        char method[16];
        size_t k = 0;
        for (; cn_service_routes[i].method[k]; k++)
            method[k] = (char)tolower((unsigned char)cn_service_routes[i].method[k]);
        method[k] = 0;
        json_t *op = json_object_get(json_object_get(paths, cn_service_routes[i].path), method);
        if (!op)
            fail_msg("route %s %s is missing from docs/openapi.json", cn_service_routes[i].method,
                     cn_service_routes[i].path);
    }
    const char *path;
    json_t *ops;
    int documented = 0;
    json_object_foreach(paths, path, ops) {
        const char *m;
        json_t *op;
        json_object_foreach(ops, m, op) {
            bool found = false;
            for (int i = 0; i < cn_service_n_routes; i++)
                if (!strcmp(cn_service_routes[i].path, path) && !strcasecmp(cn_service_routes[i].method, m))
                    found = true;
            if (!found)
                fail_msg("docs/openapi.json documents %s %s, which the server does not serve", m, path);
            documented++;
        }
    }
    assert_int_equal(documented, cn_service_n_routes);
    json_decref(doc);
}

static cn_transcript sample(void) {
    cn_transcript t;
    memset(&t, 0, sizeof t);
    t.text = strdup("Hello \"world\". Über 1h.");
    snprintf(t.language, sizeof t.language, "de");
    t.duration = 3725.5;
    t.n_segments = 2;
    t.segments = calloc(2, sizeof *t.segments);
    t.segments[0] = (cn_segment){0.0, 1.25, strdup(" Hello \"world\"."), calloc(3, sizeof(int)), 3, -0.125};
    memcpy(t.segments[0].tokens, (int[]){17, 4, 1023}, 3 * sizeof(int));
    t.segments[1] = (cn_segment){.start = 3723.0, .end = 3725.5, .text = strdup(" Über 1h.")};
    t.n_words = 1;
    t.words = calloc(1, sizeof *t.words);
    t.words[0] = (cn_word){0.0, 0.5, strdup("Hello")};
    return t;
}

static void test_formats(void **state) {
    cn_transcript t = sample();
    char *s = cn_transcript_render(&t, CN_FMT_SRT, false);
    assert_string_equal(s, "1\n00:00:00,000 --> 00:00:01,250\nHello \"world\".\n\n"
                           "2\n01:02:03,000 --> 01:02:05,500\nÜber 1h.\n\n");
    free(s);
    s = cn_transcript_render(&t, CN_FMT_VTT, false);
    assert_string_equal(s, "WEBVTT\n\n00:00:00.000 --> 00:00:01.250\nHello \"world\".\n\n"
                           "01:02:03.000 --> 01:02:05.500\nÜber 1h.\n\n");
    free(s);
    s = cn_transcript_render(&t, CN_FMT_TEXT, false);
    assert_string_equal(s, "Hello \"world\". Über 1h.\n");
    free(s);
    s = cn_transcript_render(&t, CN_FMT_JSON, false);
    assert_string_equal(s, "{\"text\":\"Hello \\\"world\\\". Über 1h.\",\"usage\":{\"type\":\"duration\",\"seconds\":3725.5}}");
    free(s);
    s = cn_transcript_render(&t, CN_FMT_VERBOSE_JSON, true);
    json_t *o = json_loads(s, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "task")), "transcribe");
    assert_int_equal(json_array_size(json_object_get(o, "segments")), 2);
    assert_true(json_number_value(json_object_get(json_array_get(json_object_get(o, "segments"), 1), "end")) == 3725.5);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(o, "words"), 0), "word")),
                        "Hello");
    /* token ids and the mean log-probability, as the CLI's verbose_json gives them; seek in centiseconds */
    json_t *s0 = json_array_get(json_object_get(o, "segments"), 0), *s1 = json_array_get(json_object_get(o, "segments"), 1);
    char *toks = json_dumps(json_object_get(s0, "tokens"), JSON_COMPACT);
    assert_string_equal(toks, "[17,4,1023]");
    free(toks);
    assert_true(json_number_value(json_object_get(s0, "avg_logprob")) == -0.125);
    assert_int_equal(json_array_size(json_object_get(s1, "tokens")), 0);
    assert_int_equal(json_integer_value(json_object_get(s1, "seek")), 372300);
    json_decref(o);
    free(s);
    /* the stored form reads back to the same transcript */
    char *stored = cn_transcript_to_json(&t);
    cn_transcript back;
    cn_error err;
    assert_int_equal(cn_transcript_from_json(stored, &back, &err), CANARY_OK);
    char *a = cn_transcript_render(&t, CN_FMT_VERBOSE_JSON, true), *b = cn_transcript_render(&back, CN_FMT_VERBOSE_JSON, true);
    assert_string_equal(a, b);
    free(a);
    free(b);
    free(stored);
    cn_transcript_free(&back);
    assert_int_equal(cn_transcript_from_json("[1,2]", &back, &err), CANARY_EFORMAT);
    /* stored before token ids were kept: none, and log-probability 0 */
    assert_int_equal(cn_transcript_from_json("{\"text\":\"x\",\"segments\":[{\"start\":0,\"end\":1,\"text\":\"x\"}]}",
                                             &back, &err),
                     CANARY_OK);
    assert_true(back.n_segments == 1 && back.segments[0].n_tokens == 0 && !back.segments[0].tokens &&
                back.segments[0].avg_logprob == 0.0);
    cn_transcript_free(&back);
    cn_transcript_free(&t);
    cn_format f;
    assert_true(cn_format_parse("verbose_json", &f) && f == CN_FMT_VERBOSE_JSON);
    assert_false(cn_format_parse("JSON", &f));
}

/* deps.md gotcha 4: values arrive in pieces; `off` tells a continuation from a new value. */
static void test_form_pieces(void **state) {
    cn_form f;
    memset(&f, 0, sizeof f);
    cn_error err;
    assert_int_equal(cn_form_add(&f, "model", "ca", 0, 2, &err), CANARY_OK);
    assert_int_equal(cn_form_add(&f, "model", "na", 2, 2, &err), CANARY_OK);
    assert_int_equal(cn_form_add(&f, "model", "ry", 4, 2, &err), CANARY_OK);
    assert_int_equal(cn_form_add(&f, "timestamp_granularities[]", "word", 0, 4, &err), CANARY_OK);
    assert_int_equal(cn_form_add(&f, "timestamp_granularities[]", "seg", 0, 3, &err), CANARY_OK);
    assert_int_equal(cn_form_add(&f, "timestamp_granularities[]", "ment", 3, 4, &err), CANARY_OK);
    assert_int_equal(cn_form_add(&f, "response_format", "verbose_json", 0, 12, &err), CANARY_OK);
    assert_int_equal(cn_form_add(&f, "language", "DE", 0, 2, &err), CANARY_OK);
    assert_string_equal(cn_form_get(&f, "model"), "canary");
    assert_int_equal(f.n, 5);
    cn_request_params p;
    const char *param;
    assert_int_equal(cn_request_params_parse(&f, CN_TASK_TRANSLATE, false, "en", true, &p, &param, &err), CANARY_OK);
    assert_string_equal(p.model, "canary");
    assert_true(p.words);
    assert_int_equal(p.format, CN_FMT_VERBOSE_JSON);
    assert_string_equal(p.opts.language, "de");
    assert_string_equal(p.opts.target_language, "en"); /* translations default to English */
    assert_true(p.opts.pnc);
    cn_request_params_free(&p);
    cn_form_free(&f);

    /* limits: too many fields, too long a value */
    memset(&f, 0, sizeof f);
    for (int i = 0; i < CN_FORM_MAX_FIELDS; i++)
        assert_int_equal(cn_form_add(&f, "x", "1", 0, 1, &err), CANARY_OK);
    assert_int_equal(cn_form_add(&f, "x", "1", 0, 1, &err), CANARY_ELIMIT);
    cn_form_free(&f);
    memset(&f, 0, sizeof f);
    static char big[CN_FORM_MAX_VALUE + 1];
    memset(big, 'a', sizeof big);
    assert_int_equal(cn_form_add(&f, "prompt", big, 0, sizeof big, &err), CANARY_ELIMIT);
    cn_form_free(&f);
}

static cn_status parse1(const char *k, const char *v, bool jobs, cn_request_params *p, const char **param) {
    cn_form f;
    memset(&f, 0, sizeof f);
    cn_error err;
    cn_form_add(&f, k, v, 0, strlen(v), &err);
    cn_status st = cn_request_params_parse(&f, CN_TASK_TRANSCRIBE, jobs, "en", true, p, param, &err);
    cn_form_free(&f);
    cn_request_params_free(p);
    return st;
}

static void test_param_errors(void **state) {
    cn_request_params p;
    const char *param;
    assert_int_equal(parse1("temperature", "1.5", false, &p, &param), CANARY_EINVAL);
    assert_string_equal(param, "temperature");
    assert_int_equal(parse1("temperature", "nan", false, &p, &param), CANARY_EINVAL);
    assert_int_equal(parse1("temperature", "0.2", false, &p, &param), CANARY_OK);
    assert_int_equal(parse1("pnc", "no", false, &p, &param), CANARY_OK);
    assert_false(p.opts.pnc);
    assert_int_equal(parse1("language", "e", false, &p, &param), CANARY_EINVAL);
    assert_int_equal(parse1("language", "pt-BR", false, &p, &param), CANARY_OK);
    assert_int_equal(parse1("timestamp_granularities[]", "word", false, &p, &param), CANARY_EINVAL);
    assert_string_equal(param, "timestamp_granularities[]");
    assert_int_equal(parse1("timestamp_granularities[]", "word", true, &p, &param), CANARY_OK); /* jobs: any format */
    assert_int_equal(parse1("task", "translate", false, &p, &param), CANARY_OK); /* ignored on sync routes */
    assert_int_equal(p.opts.task, CN_TASK_TRANSCRIBE);
    assert_int_equal(parse1("task", "translate", true, &p, &param), CANARY_OK);
    assert_int_equal(p.opts.task, CN_TASK_TRANSLATE);
    assert_int_equal(parse1("webhook_url", "file:///etc/passwd", true, &p, &param), CANARY_EINVAL);
    assert_int_equal(parse1("stream", "true", false, &p, &param), CANARY_EINVAL);
    const char *key;
    size_t len;
    assert_true(cn_bearer_token("Bearer  abc ", &key, &len) && len == 3 && !strncmp(key, "abc", 3));
    assert_false(cn_bearer_token("Basic abc", &key, &len));
    assert_false(cn_bearer_token("Bearer ", &key, &len));
}

static cn_job_record rec(const char *id, const char *owner, const char *idem) {
    cn_job_record r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "%s", id);
    snprintf(r.owner, sizeof r.owner, "%s", owner);
    r.idempotency_key = (char *)idem;
    r.options_json = (char *)"{\"task\":\"transcribe\"}";
    r.audio_path = (char *)"/nonexistent/audio";
    r.created_ms = 1000;
    return r;
}

static void test_store(void **state) {
    char dir[300];
    snprintf(dir, sizeof dir, "%s/store", cn_test_tmpdir());
    cn_error err;
    assert_int_equal(cn_mkdirs(dir, &err), CANARY_OK);
    cn_store *s;
    assert_int_equal(cn_store_open("", dir, &s, &err), CANARY_OK);
    bool dup;
    cn_job_record ex;
    const char *ids[] = {"job_a", "job_b", "job_c"};
    for (int i = 0; i < 3; i++) {
        cn_job_record r = rec(ids[i], i == 2 ? "other" : "me", i == 0 ? "key1" : NULL);
        assert_int_equal(s->ops->insert(s, &r, &dup, &ex, &err), CANARY_OK);
        assert_false(dup);
    }
    cn_job_record r = rec("job_d", "me", "key1");
    assert_int_equal(s->ops->insert(s, &r, &dup, &ex, &err), CANARY_OK);
    assert_true(dup);
    assert_string_equal(ex.id, "job_a");
    cn_job_record_free(&ex);
    r = rec("job_e", "other", "key1"); /* the same key under another owner is a new job */
    assert_int_equal(s->ops->insert(s, &r, &dup, &ex, &err), CANARY_OK);
    assert_false(dup);

    cn_job_record got;
    assert_int_equal(s->ops->get(s, "job_c", "me", false, &got, &err), CANARY_ENOTFOUND);
    assert_int_equal(s->ops->get(s, "job_c", NULL, false, &got, &err), CANARY_OK);
    assert_string_equal(got.owner, "other");
    cn_job_record_free(&got);

    cn_job_record *list;
    int n;
    bool more;
    assert_int_equal(s->ops->list(s, "me", -1, NULL, 1, &list, &n, &more, &err), CANARY_OK);
    assert_int_equal(n, 1);
    assert_true(more);
    assert_string_equal(list[0].id, "job_b");
    cn_records_free(list, n);
    assert_int_equal(s->ops->list(s, "me", -1, "job_b", 5, &list, &n, &more, &err), CANARY_OK);
    assert_int_equal(n, 1);
    assert_false(more);
    assert_string_equal(list[0].id, "job_a");
    cn_records_free(list, n);

    /* processing -> crash -> requeued */
    assert_int_equal(s->ops->set_processing(s, "job_a", 2000, 12.5, 13, "cpu", &err), CANARY_OK);
    assert_int_equal(s->ops->set_progress(s, "job_a", 5, 13, "cuda:0,cpu", &err), CANARY_OK);
    int requeued;
    assert_int_equal(s->ops->requeue_interrupted(s, &requeued, &err), CANARY_OK);
    assert_int_equal(requeued, 1);
    assert_int_equal(s->ops->get(s, "job_a", NULL, false, &got, &err), CANARY_OK);
    assert_int_equal(got.status, CN_JOB_QUEUED);
    assert_int_equal(got.chunks_done, 0);
    assert_int_equal(got.chunks_total, 13);
    cn_job_record_free(&got);
    assert_int_equal(s->ops->list_queued(s, &list, &n, &err), CANARY_OK);
    assert_int_equal(n, 4);
    assert_string_equal(list[0].id, "job_a"); /* oldest first */
    cn_records_free(list, n);

    /* finished -> result kept, audio path cleared; expiry removes it */
    assert_int_equal(s->ops->set_finished(s, "job_a", CN_JOB_COMPLETED, 5000, "{\"text\":\"x\"}", NULL, NULL, &err),
                     CANARY_OK);
    assert_int_equal(s->ops->get(s, "job_a", "me", true, &got, &err), CANARY_OK);
    assert_int_equal(got.status, CN_JOB_COMPLETED);
    assert_string_equal(got.result_json, "{\"text\":\"x\"}");
    assert_null(got.audio_path);
    assert_int_equal(got.chunks_done, 13);
    cn_job_record_free(&got);
    long counts[CN_JOB_N_STATUS];
    assert_int_equal(s->ops->count_by_status(s, counts, &err), CANARY_OK);
    assert_int_equal(counts[CN_JOB_COMPLETED], 1);
    assert_int_equal(counts[CN_JOB_QUEUED], 3);
    char **paths;
    assert_int_equal(s->ops->expire(s, 4000, &paths, &n, &err), CANARY_OK);
    assert_int_equal(n, 0);
    free(paths);
    assert_int_equal(s->ops->expire(s, 6000, &paths, &n, &err), CANARY_OK);
    free(paths);
    assert_int_equal(s->ops->get(s, "job_a", NULL, false, &got, &err), CANARY_ENOTFOUND);
    s->ops->close(s);

    /* reopening sees the same data */
    assert_int_equal(cn_store_open("", dir, &s, &err), CANARY_OK);
    assert_int_equal(s->ops->get(s, "job_b", NULL, false, &got, &err), CANARY_OK);
    cn_job_record_free(&got);
    s->ops->close(s);
    assert_int_equal(cn_store_open("postgresql://h/db", dir, &s, &err), CANARY_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "not implemented"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openapi_matches_routes), cmocka_unit_test(test_formats),
        cmocka_unit_test(test_form_pieces),            cmocka_unit_test(test_param_errors),
        cmocka_unit_test(test_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
