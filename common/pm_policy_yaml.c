/* pm_policy_yaml.c - policy files: loading, and rendering through libyaml's
 * emitter (which knows YAML's quoting rules; we never quote by hand).
 */
#include "pm_mem.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_policy_private.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct {
    char *data;
    size_t len, cap;
} s_buf_t;

static int
s_write(void *ctx, unsigned char *buffer, size_t size)
{
    s_buf_t *b = ctx;
    if (b->len + size + 1 > b->cap) {
        b->cap = (b->len + size + 1) * 2;
        b->data = pm_realloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, buffer, size);
    b->len += size;
    b->data[b->len] = '\0';
    return 1;
}

static void
s_emit(yaml_emitter_t *em, yaml_event_t *ev)
{
    /* Emitting well-formed events into memory cannot fail. */
    if (!yaml_emitter_emit(em, ev))
        abort();
}

static void
s_scalar(yaml_emitter_t *em, const char *text)
{
    yaml_event_t ev;
    yaml_scalar_style_t style = YAML_ANY_SCALAR_STYLE;
    if (strchr(text, '\n'))
        style = YAML_LITERAL_SCALAR_STYLE; /* signature files stay readable */
    else if (!*text)
        style = YAML_DOUBLE_QUOTED_SCALAR_STYLE; /* "" rather than nothing */
    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, -1, 1, 1,
                                 style);
    s_emit(em, &ev);
}

static void
s_mapping(yaml_emitter_t *em, bool start)
{
    yaml_event_t ev;
    if (start)
        yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                            YAML_BLOCK_MAPPING_STYLE);
    else
        yaml_mapping_end_event_initialize(&ev);
    s_emit(em, &ev);
}

/* Lists of plain values are written inline ([exe, bat]); lists of records
 * as blocks, one field per line. */
static void
s_value(yaml_emitter_t *em, const pm_value_t *v)
{
    yaml_event_t ev;
    if (v->kind == PM_V_SCALAR) {
        s_scalar(em, v->text);
    } else if (v->kind == PM_V_MAP) {
        s_mapping(em, true);
        for (size_t i = 0; i < v->n; i++) {
            s_scalar(em, v->keys[i]);
            s_value(em, v->items[i]);
        }
        s_mapping(em, false);
    } else {
        bool flat = true;
        for (size_t i = 0; i < v->n; i++)
            flat = flat && v->items[i]->kind == PM_V_SCALAR;
        yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                             flat ? YAML_FLOW_SEQUENCE_STYLE
                                                  : YAML_BLOCK_SEQUENCE_STYLE);
        s_emit(em, &ev);
        for (size_t i = 0; i < v->n; i++)
            s_value(em, v->items[i]);
        yaml_sequence_end_event_initialize(&ev);
        s_emit(em, &ev);
    }
}

/* Emits a value given as canonical (JSON) text. */
static void
s_value_text(yaml_emitter_t *em, const char *text)
{
    pm_diag_t *diag = pm_diag_new("render");
    pm_value_t *v = pm_value_parse(text, strlen(text), 0, diag);
    if (!v)
        abort(); /* our own JSON always parses */
    s_value(em, v);
    pm_value_destroy(&v);
    pm_diag_destroy(&diag);
}

/* Length of the group prefix two dotted names share ("inbound.checks."). */
static size_t
s_common_groups(const char *a, const char *b, size_t *depth)
{
    size_t len = 0;
    *depth = 0;
    for (size_t i = 0; a[i] && a[i] == b[i]; i++)
        if (a[i] == '.') {
            len = i + 1;
            (*depth)++;
        }
    return len;
}

static void
s_keys(yaml_emitter_t *em, const Pm__Policy *p)
{
    size_t n, open = 0;
    const pm_key_t *keys = pm_policy_keys(&n);
    const char *prev = "";
    for (size_t i = 0; i < n; i++) {
        const char *name = keys[i].name;
        size_t shared_depth;
        size_t at = s_common_groups(prev, name, &shared_depth);
        for (; open > shared_depth; open--)
            s_mapping(em, false);
        const char *dot;
        while ((dot = strchr(name + at, '.'))) {
            char *seg = pm_strndup(name + at, (size_t)(dot - name - at));
            s_scalar(em, seg);
            free(seg);
            s_mapping(em, true);
            open++;
            at = (size_t)(dot - name) + 1;
        }
        s_scalar(em, name + at);
        char *text = pm_policy_key_text(p, &keys[i]);
        s_value_text(em, text);
        free(text);
        prev = name;
    }
    for (; open > 0; open--)
        s_mapping(em, false);
}

/* Per-node overrides, under "nodes:", one dotted key per line. */
static void
s_nodes(yaml_emitter_t *em, const Pm__Policy *p)
{
    if (!p->n_overrides)
        return;
    s_scalar(em, "nodes");
    s_mapping(em, true);
    bool *done = pm_calloc(p->n_overrides, sizeof *done);
    for (size_t i = 0; i < p->n_overrides; i++) {
        if (done[i])
            continue;
        s_scalar(em, p->overrides[i]->node);
        s_mapping(em, true);
        for (size_t j = i; j < p->n_overrides; j++) {
            if (strcmp(p->overrides[j]->node, p->overrides[i]->node) != 0)
                continue;
            done[j] = true;
            s_scalar(em, p->overrides[j]->key);
            s_value_text(em, p->overrides[j]->value);
        }
        s_mapping(em, false);
    }
    free(done);
    s_mapping(em, false);
}

char *
pm_policy_to_yaml(const Pm__Policy *policy, const char *header)
{
    s_buf_t out = {0};
    if (header) {
        /* libyaml emits no comments; the header goes first, by hand, as
         * '#' lines that cannot change what the document means. */
        char *copy = pm_strdup(header), *save = NULL;
        for (char *l = strtok_r(copy, "\n", &save); l;
             l = strtok_r(NULL, "\n", &save)) {
            char *line = pm_asprintf("# %s\n", l);
            s_write(&out, (unsigned char *)line, strlen(line));
            free(line);
        }
        free(copy);
    }
    yaml_emitter_t em;
    yaml_event_t ev;
    yaml_emitter_initialize(&em);
    yaml_emitter_set_output(&em, s_write, &out);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_width(&em, 78);
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    s_emit(&em, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    s_emit(&em, &ev);
    s_mapping(&em, true);
    s_keys(&em, policy);
    s_nodes(&em, policy);
    s_mapping(&em, false);
    yaml_document_end_event_initialize(&ev, 1);
    s_emit(&em, &ev);
    yaml_stream_end_event_initialize(&ev);
    s_emit(&em, &ev);
    yaml_emitter_delete(&em);
    return out.data;
}

static char *
s_slurp(const char *path, size_t *len, char **problem)
{
    char *data = NULL;
    if (pm_file_read(path, PM_POLICY_FILE_MAX, 0, &data, len, problem) != PM_OK)
        return NULL;
    return data;
}

Pm__Policy *
pm_policy_load_file(const char *path, pm_diag_t *diag)
{
    char *problem = NULL;
    size_t len = 0;
    pm_diag_set_origin(diag, path);
    char *text = s_slurp(path, &len, &problem);
    if (!text) {
        pm_diag_add(diag, 0, NULL, "%s", problem);
        free(problem);
        return NULL;
    }
    Pm__Policy *p = NULL;
    pm_value_t *doc = pm_value_parse(text, len, 1, diag);
    if (doc) {
        char *copy = pm_strdup(path);
        p = pm_policy_from_value(doc, dirname(copy), diag);
        free(copy);
    }
    pm_value_destroy(&doc);
    free(text);
    return p;
}
