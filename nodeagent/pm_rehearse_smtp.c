/* pm_rehearse_smtp.c - swaks through a rehearsal's Postfix, its transcript
 * read back (see pm_rehearse_smtp.h). */
#include "pm_rehearse_smtp.h"

#include "pm_cmd.h"
#include "pm_error.h"
#include "pm_mem.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_SWAKS_MS 60000

char *
pm_rehearse_smtp_data(const char *msg, size_t len, size_t *out_len)
{
    /* at worst every byte a line of its own, doubled, plus CRLF */
    char *out = pm_malloc(len * 3 + 8);
    size_t o = 0;
    bool bol = true;
    for (size_t i = 0; i < len; i++) {
        char c = msg[i];
        if (bol && c == '.')
            out[o++] = '.';
        bol = false;
        if (c == '\r' && i + 1 < len && msg[i + 1] == '\n')
            continue; /* the \n makes the CRLF */
        if (c == '\n' || c == '\r') {
            out[o++] = '\r', out[o++] = '\n';
            bol = true;
            continue;
        }
        out[o++] = c;
    }
    if (!bol)
        out[o++] = '\r', out[o++] = '\n';
    memcpy(out + o, ".\r\n", 4);
    *out_len = o + 3;
    return out;
}

void
pm_rehearse_answer_clear(pm_rehearse_answer_t *a)
{
    PM_FREE(&a->stage);
    PM_FREE(&a->reply);
}

/* The stage a reply to client command CMD belongs to. */
static const char *
s_stage(const char *cmd)
{
    static const struct {
        const char *verb, *stage;
    } map[] = {{"EHLO", "helo"},    {"HELO", "helo"}, {"XCLIENT", "connect"},
               {"MAIL", "mail"},    {"RCPT", "rcpt"}, {"DATA", "data"},
               {"STARTTLS", "helo"}};
    for (size_t i = 0; cmd && i < sizeof map / sizeof *map; i++)
        if (strncasecmp(cmd, map[i].verb, strlen(map[i].verb)) == 0)
            return map[i].stage;
    return "connect";
}

typedef struct {
    char cmd[16]; /* the client's last command verb */
    bool body;    /* after a 354: the next answer ends DATA */
    char *reply;  /* the reply being read */
    bool refusal; /* its lines came as "<** " */
    char *swaks;  /* swaks's own complaint ("*** ..."), or NULL */
} s_reader_t;

/* One "<-  " or "<** " line: TEXT after the marker. True when a whole
 * reply that settles the answer was read into *OUT. */
static bool
s_reply_line(s_reader_t *r, const char *text, bool refusal,
             pm_rehearse_answer_t *out)
{
    bool last = strlen(text) < 4 || text[3] != '-';
    if (!r->reply) {
        r->reply =
            pm_asprintf("%.3s %s", text, strlen(text) > 4 ? text + 4 : "");
    } else {
        char *more =
            pm_asprintf("%s %s", r->reply, strlen(text) > 4 ? text + 4 : "");
        free(r->reply);
        r->reply = more;
    }
    r->refusal |= refusal;
    if (!last)
        return false;
    bool done = false;
    if (r->refusal || r->body) {
        out->stage = pm_strdup(r->body ? "end-of-data" : s_stage(r->cmd));
        out->reply = r->reply;
        r->reply = NULL;
        done = true;
    } else if (strncmp(r->reply, "354", 3) == 0) {
        r->body = true;
    }
    PM_FREE(&r->reply);
    r->refusal = false;
    return done;
}

int
pm_rehearse_smtp_parse(const char *transcript, pm_rehearse_answer_t *out,
                       char **why)
{
    s_reader_t r;
    memset(&r, 0, sizeof r);
    memset(out, 0, sizeof *out);
    const char *p = transcript ? transcript : "";
    bool done = false;
    while (*p && !done) {
        size_t len = strcspn(p, "\n");
        char *line = pm_strndup(p, len);
        if (len && line[len - 1] == '\r')
            line[len - 1] = 0;
        if (strncmp(line, "<-  ", 4) == 0 || strncmp(line, "<** ", 4) == 0)
            done = s_reply_line(&r, line + 4, line[1] == '*', out);
        else if (strncmp(line, " -> ", 4) == 0 && !r.body)
            snprintf(r.cmd, sizeof r.cmd, "%.*s", (int)strcspn(line + 4, " "),
                     line + 4);
        else if (strncmp(line, "*** ", 4) == 0 && !r.swaks)
            r.swaks = pm_strdup(line + 4);
        free(line);
        p += len + (p[len] == '\n');
    }
    free(r.reply);
    if (!done) {
        *why = pm_asprintf("swaks gave no answer%s%s",
                           r.swaks ? ": " : " (its transcript ends early)",
                           r.swaks ? r.swaks : "");
        free(r.swaks);
        return PM_EPROTO;
    }
    free(r.swaks);
    return PM_OK;
}

int
pm_rehearse_smtp_send(const pm_rehearse_smtp_t *s, pm_rehearse_answer_t *out,
                      char **why)
{
    char port[16], data[4096];
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(data, sizeof data, "@%s", s->data_file);
    const char *argv[32];
    size_t n = 0;
    argv[n++] = s->swaks ? s->swaks : PM_REHEARSE_SWAKS;
    argv[n++] = "--server", argv[n++] = s->host;
    argv[n++] = "--port", argv[n++] = port;
    argv[n++] = "--helo", argv[n++] = s->helo;
    argv[n++] = "--from", argv[n++] = *s->sender ? s->sender : "<>";
    argv[n++] = "--to", argv[n++] = s->rcpt;
    argv[n++] = "--xclient-addr", argv[n++] = s->client_addr;
    argv[n++] = "--xclient-name";
    argv[n++] =
        s->client_name && *s->client_name ? s->client_name : "[UNAVAILABLE]";
    if (s->auth && *s->auth)
        argv[n++] = "--xclient-login", argv[n++] = s->auth;
    argv[n++] = "--data", argv[n++] = data;
    argv[n++] = "--no-data-fixup";
    argv[n++] = "--suppress-data";
    argv[n++] = "--timeout", argv[n++] = "30s";
    argv[n] = NULL;
    pm_cmd_opts_t o = {.timeout_ms = S_SWAKS_MS};
    pm_cmd_result_t res = {0};
    int rc = pm_cmd_run((char *const *)argv, &o, &res);
    int ret = PM_OK;
    if (rc < 0) {
        *why = pm_cmd_why("swaks", &res);
        ret = PM_EIO;
    } else if (pm_rehearse_smtp_parse(res.out, out, why) != PM_OK) {
        ret = PM_EIO;
    }
    pm_cmd_result_clear(&res);
    return ret;
}
