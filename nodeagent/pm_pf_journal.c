/* pm_pf_journal.c - smtpd's log lines from the systemd journal, through
 * libsystemd's sd-journal (see pm_pf_journal.h). */
#include "pm_pf_journal.h"

#include "pm_error.h"
#include "pm_mem.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-journal.h>

/* a log line longer than this is none of smtpd's refusals */
#define S_LINE_MAX 8192

struct pm_pf_journal_t {
    sd_journal *j;
    char *ident; /* "SYSLOG_NAME/": the instance's entries start so */
    size_t ident_len;
};

static uint64_t
s_now_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

pm_pf_journal_t *
pm_pf_journal_new(uid_t postfix_uid, const char *syslog_name, char **why)
{
    sd_journal *j = NULL;
    char uid[32];
    snprintf(uid, sizeof uid, "_UID=%lu", (unsigned long)postfix_uid);
    int rc = sd_journal_open(&j, SD_JOURNAL_LOCAL_ONLY | SD_JOURNAL_SYSTEM);
    /* fields of one entry, all required: ANDed */
    if (rc >= 0)
        rc = sd_journal_add_match(j, "_COMM=smtpd", 0);
    if (rc >= 0)
        rc = sd_journal_add_match(j, uid, 0);
    /* the journal's inotify watch, so that rotated files are followed */
    if (rc >= 0)
        rc = sd_journal_get_fd(j);
    /* from now on: next() then gives the first entry logged after this.
     * (Not seek_tail + previous: with no matching entry yet there is no
     * last one to stand on, and the first next() then only moves onto the
     * first new entry, which is lost.) */
    if (rc >= 0)
        rc = sd_journal_seek_realtime_usec(j, s_now_usec());
    if (rc < 0) {
        pm_why(why, "journal", "the system journal: %s", strerror(-rc));
        sd_journal_close(j);
        return NULL;
    }
    pm_pf_journal_t *self = pm_calloc(1, sizeof *self);
    self->j = j;
    self->ident = pm_asprintf("%s/", syslog_name ? syslog_name : "postfix");
    self->ident_len = strlen(self->ident);
    return self;
}

void
pm_pf_journal_destroy(pm_pf_journal_t **self_p)
{
    pm_pf_journal_t *self = *self_p;
    if (!self)
        return;
    sd_journal_close(self->j);
    free(self->ident);
    free(self);
    *self_p = NULL;
}

/* Appends FIELD's value in the current entry ("FIELD=value" past the
 * '=') and then TAIL to LINE (USED of S_LINE_MAX bytes taken): false when
 * the entry has no such field, or the line would be too long. Copied at
 * once: sd_journal_get_data's pointer lasts until its next call. */
static bool
s_append(sd_journal *j, const char *field, const char *tail, char *line,
         size_t *used)
{
    const void *data;
    size_t size, skip = strlen(field) + 1, tail_len = strlen(tail);
    if (sd_journal_get_data(j, field, &data, &size) < 0 || size < skip)
        return false;
    size -= skip;
    if (*used + size + tail_len >= S_LINE_MAX ||
        memchr((const char *)data + skip, '\n', size))
        return false;
    memcpy(line + *used, (const char *)data + skip, size);
    memcpy(line + *used + size, tail, tail_len);
    *used += size + tail_len;
    return true;
}

int
pm_pf_journal_read(pm_pf_journal_t *self, size_t max, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    int rc = sd_journal_process(self->j); /* files added or rotated */
    if (rc < 0)
        return rc;
    char line[S_LINE_MAX];
    size_t cap = 0;
    while (*len + S_LINE_MAX <= max && (rc = sd_journal_next(self->j)) > 0) {
        size_t used = 0; /* "postfix/smtpd[PID]: MESSAGE\n" */
        if (!s_append(self->j, "SYSLOG_IDENTIFIER", "[", line, &used) ||
            strncmp(line, self->ident, self->ident_len) != 0 ||
            !s_append(self->j, "_PID", "]: ", line, &used) ||
            !s_append(self->j, "MESSAGE", "\n", line, &used))
            continue;
        if (*len + used > cap) { /* a few lines a poll, mostly: grown */
            cap = cap ? 2 * cap : 4 * S_LINE_MAX;
            if (cap > max) /* the loop's test keeps LEN + USED within MAX */
                cap = max;
            *buf = pm_realloc(*buf, cap);
        }
        memcpy(*buf + *len, line, used);
        *len += used;
    }
    return rc < 0 ? rc : 0;
}
