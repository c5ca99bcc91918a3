/* A growable, always NUL-terminated string builder. On allocation failure it enters a sticky
 * failed state (cn_sb_failed) instead of aborting; cn_sb_str then returns "". */
#ifndef CN_BASE_STRBUF_H
#define CN_BASE_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cn_strbuf {
    char *data;
    size_t len;
    size_t cap;
    bool failed;
} cn_strbuf;

void cn_sb_init(cn_strbuf *sb);
void cn_sb_free(cn_strbuf *sb);
void cn_sb_reset(cn_strbuf *sb); /* length 0, keeps capacity */
bool cn_sb_reserve(cn_strbuf *sb, size_t extra);
void cn_sb_putn(cn_strbuf *sb, const char *s, size_t n);
void cn_sb_puts(cn_strbuf *sb, const char *s);
void cn_sb_putc(cn_strbuf *sb, char c);
void cn_sb_printf(cn_strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends `s` as valid UTF-8: each byte that does not start a valid sequence (stray continuation
 * byte, truncated or overlong sequence, surrogate, above U+10FFFF) becomes U+FFFD. */
void cn_sb_put_utf8(cn_strbuf *sb, const char *s);
/* Length (1-4) of the valid UTF-8 sequence at s, or 0 when it is invalid (truncated, overlong,
 * surrogate, above U+10FFFF). s must be NUL-terminated. */
size_t cn_utf8_seq_len(const unsigned char *s);
/* Appends `s` as a quoted JSON string with escapes (invalid UTF-8 bytes become U+FFFD). */
void cn_sb_json_string(cn_strbuf *sb, const char *s);
const char *cn_sb_str(const cn_strbuf *sb);
bool cn_sb_failed(const cn_strbuf *sb);
/* Hands the buffer to the caller (free() it); the builder is reset to empty. NULL if failed. */
char *cn_sb_steal(cn_strbuf *sb);

#endif
