#include "base/strbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cn_sb_init(cn_strbuf *sb) { memset(sb, 0, sizeof *sb); }

void cn_sb_free(cn_strbuf *sb) {
    free(sb->data);
    cn_sb_init(sb);
}

void cn_sb_reset(cn_strbuf *sb) {
    sb->len = 0;
    if (sb->data)
        sb->data[0] = '\0';
}

bool cn_sb_reserve(cn_strbuf *sb, size_t extra) {
    if (sb->failed)
        return false;
    if (extra > SIZE_MAX / 2 - sb->len - 1) {
        sb->failed = true;
        return false;
    }
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap)
        return true;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = realloc(sb->data, cap);
    if (!p) {
        sb->failed = true;
        return false;
    }
    sb->data = p;
    sb->cap = cap;
    return true;
}

void cn_sb_putn(cn_strbuf *sb, const char *s, size_t n) {
    if (!cn_sb_reserve(sb, n))
        return;
    memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

void cn_sb_puts(cn_strbuf *sb, const char *s) { cn_sb_putn(sb, s, strlen(s)); }
void cn_sb_putc(cn_strbuf *sb, char c) { cn_sb_putn(sb, &c, 1); }

void cn_sb_printf(cn_strbuf *sb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        sb->failed = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        cn_sb_putn(sb, small, (size_t)n);
    } else if (cn_sb_reserve(sb, (size_t)n)) {
        vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap2);
        sb->len += (size_t)n;
    }
    va_end(ap2);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
size_t cn_utf8_seq_len(const unsigned char *s) {
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) { n = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 4; cp = c & 0x07; }
    else return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

void cn_sb_put_utf8(cn_strbuf *sb, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = cn_utf8_seq_len(p);
        if (n == 0) {
            cn_sb_puts(sb, "\xEF\xBF\xBD");
            p++;
        } else {
            cn_sb_putn(sb, (const char *)p, n);
            p += n;
        }
    }
}

void cn_sb_json_string(cn_strbuf *sb, const char *s) {
    cn_sb_putc(sb, '"');
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            cn_sb_putc(sb, '\\');
            cn_sb_putc(sb, (char)c);
            p++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n': cn_sb_puts(sb, "\\n"); break;
            case '\r': cn_sb_puts(sb, "\\r"); break;
            case '\t': cn_sb_puts(sb, "\\t"); break;
            default: cn_sb_printf(sb, "\\u%04x", c);
            }
            p++;
        } else if (c < 0x80) {
            cn_sb_putc(sb, (char)c);
            p++;
        } else {
            size_t n = cn_utf8_seq_len(p);
            if (n == 0) {
                cn_sb_puts(sb, "\xEF\xBF\xBD");
                p++;
            } else {
                cn_sb_putn(sb, (const char *)p, n);
                p += n;
            }
        }
    }
    cn_sb_putc(sb, '"');
}

const char *cn_sb_str(const cn_strbuf *sb) { return (sb->data && !sb->failed) ? sb->data : ""; }
bool cn_sb_failed(const cn_strbuf *sb) { return sb->failed; }

char *cn_sb_steal(cn_strbuf *sb) {
    if (sb->failed) {
        cn_sb_free(sb);
        return NULL;
    }
    char *p = sb->data ? sb->data : calloc(1, 1);
    cn_sb_init(sb);
    return p;
}
