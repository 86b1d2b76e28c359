/*
 * expo.h: a small parser of the Prometheus text exposition for the unit tests (test_metrics.c,
 * test_node.c): HELP and TYPE once per family, samples as name{labels} value, labels decoded and
 * joined as k=v|k=v in order. Static functions: include it once per test file.
 */
#ifndef ROOMCAST_TEST_EXPO_H
#define ROOMCAST_TEST_EXPO_H

#include <ctype.h>
#include <event2/buffer.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SAMPLES 512
#define MAX_FAMILIES 128

typedef struct sample {
    char name[128];
    char labels[512]; /* decoded, as k=v pairs joined by '|' in order */
    double value;
} sample;

typedef struct family {
    char name[128];
    char type[16];
    int help_lines, type_lines, samples;
} family;

typedef struct expo {
    sample s[MAX_SAMPLES];
    size_t ns;
    family f[MAX_FAMILIES];
    size_t nf;
} expo;

static family *family_get(expo *e, const char *name)
{
    for (size_t i = 0; i < e->nf; i++)
        if (strcmp(e->f[i].name, name) == 0) return &e->f[i];
    assert_true(e->nf < MAX_FAMILIES);
    family *f = &e->f[e->nf++];
    memset(f, 0, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", name);
    return f;
}

static int is_name_start(char c) { return isalpha((unsigned char)c) || c == '_' || c == ':'; }
static int is_name_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == ':'; }

/* Reads a metric or label name at *p into out; fails the test when there is none. */
static void parse_name(const char **p, char *out, size_t cap, int colon_ok)
{
    const char *q = *p;
    assert_true(is_name_start(*q) && (colon_ok || *q != ':'));
    while (is_name_char(*q) && (colon_ok || *q != ':')) q++;
    assert_true((size_t)(q - *p) < cap);
    memcpy(out, *p, (size_t)(q - *p));
    out[q - *p] = '\0';
    *p = q;
}

static double parse_value(const char *v)
{
    if (strcmp(v, "+Inf") == 0) return INFINITY;
    if (strcmp(v, "-Inf") == 0) return -INFINITY;
    if (strcmp(v, "NaN") == 0) return NAN;
    char *end;
    double d = strtod(v, &end);
    assert_true(end != v && *end == '\0');
    return d;
}

/* The family a sample belongs to: its own name, or for histograms the name without the suffix. */
static family *owner(expo *e, const char *name)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    for (size_t i = 0; i < e->nf; i++)
        if (strcmp(e->f[i].name, name) == 0) return &e->f[i];
    for (size_t k = 0; k < 3; k++) {
        size_t n = strlen(name), sl = strlen(suffixes[k]);
        if (n <= sl || strcmp(name + n - sl, suffixes[k]) != 0) continue;
        for (size_t i = 0; i < e->nf; i++)
            if (strlen(e->f[i].name) == n - sl && strncmp(e->f[i].name, name, n - sl) == 0 &&
                strcmp(e->f[i].type, "histogram") == 0)
                return &e->f[i];
    }
    return NULL;
}

static void parse_line(expo *e, const char *line, family **current)
{
    if (line[0] == '#') {
        char kind[8], name[128];
        assert_true(strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0);
        memcpy(kind, line + 2, 4);
        kind[4] = '\0';
        const char *p = line + 7;
        parse_name(&p, name, sizeof(name), 1);
        assert_int_equal(*p, ' ');
        p++;
        family *f = family_get(e, name);
        if (strcmp(kind, "HELP") == 0) {
            f->help_lines++;
            assert_true(strlen(p) > 0);
        } else {
            f->type_lines++;
            assert_true(strcmp(p, "counter") == 0 || strcmp(p, "gauge") == 0 ||
                        strcmp(p, "histogram") == 0 || strcmp(p, "summary") == 0 ||
                        strcmp(p, "untyped") == 0);
            assert_int_equal(f->samples, 0); /* TYPE comes before the samples */
            snprintf(f->type, sizeof(f->type), "%s", p);
            *current = f;
        }
        return;
    }
    assert_true(e->ns < MAX_SAMPLES);
    sample *s = &e->s[e->ns++];
    const char *p = line;
    parse_name(&p, s->name, sizeof(s->name), 1);
    s->labels[0] = '\0';
    size_t ll = 0;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            char lname[64];
            parse_name(&p, lname, sizeof(lname), 0);
            ll += (size_t)snprintf(s->labels + ll, sizeof(s->labels) - ll, "%s%s=", ll ? "|" : "",
                                   lname);
            assert_int_equal(*p++, '=');
            assert_int_equal(*p++, '"');
            while (*p != '"') {
                assert_true(*p != '\0' && *p != '\n');
                char c = *p++;
                if (c == '\\') {
                    c = *p++;
                    assert_true(c == '\\' || c == '"' || c == 'n');
                    if (c == 'n') c = '\n';
                }
                assert_true(ll + 1 < sizeof(s->labels));
                s->labels[ll++] = c;
                s->labels[ll] = '\0';
            }
            p++;
            if (*p == ',') p++;
            else assert_int_equal(*p, '}');
        }
        p++;
    }
    assert_int_equal(*p, ' ');
    s->value = parse_value(p + 1);
    family *f = owner(e, s->name);
    assert_non_null(f);
    assert_ptr_equal(f, *current); /* samples of a family are grouped right after its TYPE */
    f->samples++;
}

/* Parses the whole exposition; the text must end with a newline and have no blank lines. */
static void parse_expo(expo *e, struct evbuffer *buf)
{
    memset(e, 0, sizeof(*e));
    size_t len = evbuffer_get_length(buf);
    char *text = rc_malloc(len + 1);
    evbuffer_copyout(buf, text, len);
    text[len] = '\0';
    assert_true(len > 0 && text[len - 1] == '\n');
    family *current = NULL;
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        assert_true(*line != '\0');
        parse_line(e, line, &current);
    }
    for (size_t i = 0; i < e->nf; i++) {
        assert_int_equal(e->f[i].help_lines, 1);
        assert_int_equal(e->f[i].type_lines, 1);
        if (strcmp(e->f[i].type, "counter") == 0) {
            size_t n = strlen(e->f[i].name);
            assert_true(n > 6 && strcmp(e->f[i].name + n - 6, "_total") == 0);
        }
    }
    rc_free(text);
}

static const sample *find(const expo *e, const char *name, const char *labels)
{
    for (size_t i = 0; i < e->ns; i++)
        if (strcmp(e->s[i].name, name) == 0 && strcmp(e->s[i].labels, labels) == 0) return &e->s[i];
    return NULL;
}

static double value_of(const expo *e, const char *name, const char *labels)
{
    const sample *s = find(e, name, labels);
    if (!s) fail_msg("missing sample %s{%s}", name, labels);
    return s->value;
}

static const family *family_find(const expo *e, const char *name)
{
    for (size_t i = 0; i < e->nf; i++)
        if (strcmp(e->f[i].name, name) == 0) return &e->f[i];
    return NULL;
}

#endif
