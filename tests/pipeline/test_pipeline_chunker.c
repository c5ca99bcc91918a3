/* Chunk planner: exact plans for hand-made cases, and properties over random region layouts. */
#include "test_util.h"

#include <math.h>

#include "pipeline/chunker.h"

#define SR 16000
#define S(x) ((int64_t)((x) * SR))

static uint64_t rng_state;
static uint32_t rnd(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}
static int64_t rnd_range(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (uint32_t)(hi - lo + 1)); }

static cn_chunk_params params(double max, double min, double overlap, double skip) {
    cn_chunk_params p;
    cn_chunk_params_default(&p);
    p.max_s = max;
    p.min_s = min;
    p.overlap_s = overlap;
    p.skip_silence_s = skip;
    return p;
}

static void plan(const cn_chunk_params *p, const cn_span *r, size_t n, int64_t total, cn_chunk **out, size_t *nout) {
    cn_error err;
    assert_int_equal(cn_chunker_plan_all(p, r, n, total, out, nout, &err), CANARY_OK);
}

static void test_silence_gives_no_chunks(void **state) {
    cn_chunk_params p = params(40, 10, 0, 2);
    cn_chunk *c;
    size_t n;
    plan(&p, NULL, 0, S(3600), &c, &n);
    assert_int_equal(n, 0);
    assert_null(c);
}

static void test_short_speech_is_one_chunk(void **state) {
    cn_chunk_params p = params(40, 10, 0, 2);
    cn_span r[] = {{S(1), S(2.5)}, {S(3), S(4)}};
    cn_chunk *c;
    size_t n;
    plan(&p, r, 2, S(10), &c, &n);
    assert_int_equal(n, 1);
    assert_int_equal(c[0].start, S(1));
    assert_int_equal(c[0].end, S(4));
    assert_false(c[0].hard_cut_before);
    assert_false(c[0].hard_cut_after);
    free(c);
}

static void test_long_silence_is_skipped(void **state) {
    cn_chunk_params p = params(40, 10, 0, 2);
    cn_span r[] = {{S(0), S(5)}, {S(7.5), S(9)}, {S(100), S(101)}};
    cn_chunk *c;
    size_t n;
    plan(&p, r, 3, S(200), &c, &n);
    /* 2.5 s and 91 s silences are both >= 2 s: three chunks, nothing in between */
    assert_int_equal(n, 3);
    assert_int_equal(c[0].start, S(0));
    assert_int_equal(c[0].end, S(5));
    assert_int_equal(c[1].start, S(7.5));
    assert_int_equal(c[1].end, S(9));
    assert_int_equal(c[2].start, S(100));
    assert_int_equal(c[2].end, S(101));
    free(c);
}

static void test_cut_at_longest_silence_after_min(void **state) {
    cn_chunk_params p = params(40, 10, 0, 2);
    /* speech with short pauses; the longest pause ending a >= 10 s chunk is after 20 s (1.5 s) */
    cn_span r[] = {{S(0), S(5)}, {S(5.5), S(12)}, {S(12.3), S(20)}, {S(21.5), S(30)}, {S(30.2), S(45)}};
    cn_chunk *c;
    size_t n;
    plan(&p, r, 5, S(45), &c, &n);
    assert_int_equal(n, 2);
    assert_int_equal(c[0].start, S(0));
    assert_int_equal(c[0].end, S(20));
    assert_int_equal(c[1].start, S(21.5));
    assert_int_equal(c[1].end, S(45));
    free(c);
}

static void test_continuous_speech_balanced_hard_cuts(void **state) {
    cn_chunk_params p = params(40, 10, 0, 2);
    cn_span r[] = {{0, S(100)}};
    cn_chunk *c;
    size_t n;
    plan(&p, r, 1, S(100), &c, &n);
    /* 100 s > 80 s: cut at 40 s; the remaining 60 s fits two chunks: 30 + 30 */
    assert_int_equal(n, 3);
    assert_int_equal(c[0].end, S(40));
    assert_true(c[0].hard_cut_after);
    assert_int_equal(c[1].start, S(40));
    assert_true(c[1].hard_cut_before);
    assert_int_equal(c[1].end, S(70));
    assert_int_equal(c[2].start, S(70));
    assert_int_equal(c[2].end, S(100));
    assert_false(c[2].hard_cut_after);
    free(c);
    /* with 1 s overlap: the second chunk starts at 39 s; 61 s + 1 s split into two 31 s pieces */
    p.overlap_s = 1;
    plan(&p, r, 1, S(100), &c, &n);
    assert_int_equal(n, 3);
    assert_int_equal(c[1].start, S(39));
    assert_int_equal(c[1].end, S(70));
    assert_int_equal(c[2].start, S(69));
    assert_int_equal(c[2].end, S(100));
    free(c);
}

static void test_region_past_end_is_clipped(void **state) {
    cn_chunk_params p = params(40, 10, 0, 2);
    cn_span r[] = {{S(9), S(10.2)}};
    cn_chunk *c;
    size_t n;
    plan(&p, r, 1, S(10), &c, &n);
    assert_int_equal(n, 1);
    assert_int_equal(c[0].end, S(10));
    free(c);
}

static void test_bad_params_and_order(void **state) {
    cn_chunker *ch;
    cn_error err;
    cn_chunk_params p = params(40, 50, 0, 2);
    assert_int_equal(cn_chunker_create(&p, &ch, &err), CANARY_EINVAL);
    assert_non_null(strstr(err.msg, "minimum chunk length 50"));
    p = params(40, 10, 20, 2);
    assert_int_equal(cn_chunker_create(&p, &ch, &err), CANARY_EINVAL);
    assert_non_null(strstr(err.msg, "overlap 20"));
    p = params(40, 10, 0, 2);
    assert_int_equal(cn_chunker_create(&p, &ch, &err), CANARY_OK);
    assert_int_equal(cn_chunker_push(ch, (cn_span){100, 200}, &err), CANARY_OK);
    assert_int_equal(cn_chunker_push(ch, (cn_span){150, 300}, &err), CANARY_EINVAL);
    assert_non_null(strstr(err.msg, "[150, 300)"));
    cn_chunker_destroy(ch);
}

/* Random layouts: speech runs with pauses of every kind, including runs far over the limit. */
static size_t random_regions(cn_span *r, size_t cap, int64_t *total) {
    size_t n = 0;
    int64_t t = rnd_range(0, S(5));
    while (n < cap) {
        int kind = (int)(rnd() % 10);
        int64_t len = kind == 0 ? rnd_range(S(40), S(200)) : rnd_range(S(0.05), S(15));
        r[n].start = t;
        r[n].end = t + len;
        t = r[n].end;
        n++;
        int gk = (int)(rnd() % 10);
        int64_t gap = gk == 0 ? 0 : gk < 6 ? rnd_range(1, S(1)) : gk < 9 ? rnd_range(S(1), S(4)) : rnd_range(S(4), S(120));
        t += gap;
        if (rnd() % 40 == 0)
            break;
    }
    *total = t + rnd_range(0, S(3));
    return n;
}

static bool in_speech(const cn_span *r, size_t n, int64_t x) {
    for (size_t i = 0; i < n; i++)
        if (r[i].start < x && x < r[i].end)
            return true;
    return false;
}

static void check_properties(const cn_chunk_params *p, const cn_span *r, size_t n, int64_t total, const cn_chunk *c,
                             size_t nc) {
    int64_t max = (int64_t)(p->max_s * SR), ov = (int64_t)(p->overlap_s * SR);
    int64_t skip = (int64_t)ceil(p->skip_silence_s * SR);
    for (size_t i = 0; i < nc; i++) {
        assert_true(c[i].end > c[i].start);
        assert_true(c[i].end - c[i].start <= max);        /* never over the limit */
        assert_true(c[i].start >= 0 && c[i].end <= total); /* inside the audio */
        if (i > 0) {
            if (c[i].hard_cut_before) {
                assert_true(c[i - 1].hard_cut_after);
                assert_true(c[i].start >= c[i - 1].end - ov && c[i].start <= c[i - 1].end);
            } else {
                assert_true(c[i].start >= c[i - 1].end);
                assert_false(c[i - 1].hard_cut_after);
            }
        }
        /* cuts in silence: a chunk that does not end with a hard cut ends outside speech */
        if (!c[i].hard_cut_after)
            assert_false(in_speech(r, n, c[i].end));
        /* a hard cut happens only when the chunk holds no silence at all */
        if (c[i].hard_cut_after)
            for (size_t k = 0; k + 1 < n; k++)
                assert_false(r[k].end < r[k + 1].start && r[k].end > c[i].start && r[k].end <= c[i].end);
        /* never bridges a long silence */
        for (size_t k = 0; k + 1 < n; k++)
            if (r[k + 1].start - r[k].end >= skip)
                assert_false(c[i].start < r[k].end && r[k + 1].start < c[i].end);
    }
    /* full coverage of speech: every region sample (inside the audio) lies in some chunk */
    size_t j = 0;
    for (size_t k = 0; k < n; k++) {
        int64_t x = r[k].start, e = r[k].end < total ? r[k].end : total;
        while (x < e) {
            while (j < nc && c[j].end <= x)
                j++;
            assert_true(j < nc);
            assert_true(c[j].start <= x);
            x = c[j].end;
        }
    }
}

static void assert_chunk_equal(const cn_chunk *a, const cn_chunk *b) {
    assert_int_equal(a->start, b->start);
    assert_int_equal(a->end, b->end);
    assert_int_equal(a->hard_cut_before, b->hard_cut_before);
    assert_int_equal(a->hard_cut_after, b->hard_cut_after);
}

static void test_random_properties_and_streaming(void **state) {
    rng_state = 12345;
    static cn_span r[400];
    for (int iter = 0; iter < 300; iter++) {
        int64_t total;
        size_t n = random_regions(r, 400, &total);
        double max = (double)rnd_range(8, 60);
        cn_chunk_params p = params(max, (double)rnd_range(0, (int64_t)max), (double)(rnd() % 3) * max / 10.0,
                                   0.5 + (double)(rnd() % 40) / 10.0);
        cn_chunk *c;
        size_t nc;
        plan(&p, r, n, total, &c, &nc);
        check_properties(&p, r, n, total, c, nc);

        /* streaming with a random watermark schedule gives the identical plan */
        cn_chunker *ch;
        cn_error err;
        assert_int_equal(cn_chunker_create(&p, &ch, &err), CANARY_OK);
        size_t pushed = 0, got = 0;
        int64_t w = 0;
        while (w < total) {
            w += rnd_range(1, S(20));
            if (w > total)
                w = total;
            while (pushed < n && r[pushed].start < w)
                assert_int_equal(cn_chunker_push(ch, r[pushed++], &err), CANARY_OK);
            cn_chunker_watermark(ch, w);
            cn_chunk x;
            while (cn_chunker_next(ch, &x)) {
                assert_true(got < nc);
                assert_chunk_equal(&x, &c[got]);
                got++;
                assert_true(cn_chunker_position(ch) >= x.start);
            }
        }
        while (pushed < n)
            assert_int_equal(cn_chunker_push(ch, r[pushed++], &err), CANARY_OK);
        cn_chunker_finish(ch, total);
        cn_chunk x;
        while (cn_chunker_next(ch, &x)) {
            assert_true(got < nc);
            assert_chunk_equal(&x, &c[got]);
            got++;
        }
        assert_int_equal(got, nc);
        assert_true(cn_chunker_done(ch));
        cn_chunker_destroy(ch);
        free(c);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_silence_gives_no_chunks),
        cmocka_unit_test(test_short_speech_is_one_chunk),
        cmocka_unit_test(test_long_silence_is_skipped),
        cmocka_unit_test(test_cut_at_longest_silence_after_min),
        cmocka_unit_test(test_continuous_speech_balanced_hard_cuts),
        cmocka_unit_test(test_region_past_end_is_clipped),
        cmocka_unit_test(test_bad_params_and_order),
        cmocka_unit_test(test_random_properties_and_streaming),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
