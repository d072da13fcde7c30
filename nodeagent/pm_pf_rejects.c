/* pm_pf_rejects.c - Postfix's refusals from its log, kept as decision
 * records (see pm_pf_rejects.h). */
#include "pm_pf_rejects.h"

#include "pm_declog.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_pf_journal.h"
#include "pm_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Postfix's wording for each restriction the policy renders (pm_pf_render),
 * most specific first. */
static const struct {
    const char *words;
    const char *key;
} s_refusals[] = {
    {"Relay access denied", "outbound.mynetworks"},
    {"Helo command rejected: Invalid name", "inbound.checks.helo_valid"},
    {"Helo command rejected: need fully-qualified hostname",
     "inbound.checks.helo_fqdn"},
    {"Helo command rejected: Host not found", "inbound.checks.helo_resolves"},
    {"Client host rejected: cannot find your reverse hostname",
     "inbound.checks.reverse_client_hostname"},
    {"Client host rejected: cannot find your hostname",
     "inbound.checks.client_hostname"},
    {"Sender address rejected: need fully-qualified address",
     "inbound.checks.sender_fqdn"},
    {"Sender address rejected: Domain not found",
     "inbound.checks.sender_domain"},
    {"Sender address rejected: not owned by user",
     "inbound.reject_sender_login_mismatch"},
    {"Sender address rejected: not logged in",
     "inbound.reject_sender_login_mismatch"},
    {"Sender address rejected: User unknown", "inbound.reject_unlisted_sender"},
    {"Recipient address rejected: User unknown",
     "inbound.reject_unlisted_recipient"},
};

const char *
pm_pf_reject_key(const char *reply)
{
    for (size_t i = 0; reply && i < sizeof s_refusals / sizeof *s_refusals; i++)
        if (strstr(reply, s_refusals[i].words))
            return s_refusals[i].key;
    return NULL;
}

void
pm_pf_reject_clear(pm_pf_reject_t *r)
{
    PM_FREE(&r->queue_id);
    PM_FREE(&r->stage);
    PM_FREE(&r->client);
    PM_FREE(&r->reply);
    PM_FREE(&r->from);
    PM_FREE(&r->to);
    PM_FREE(&r->helo);
}

/* The text between MARK (e.g. " to=<") and the next '>' after FROM, or "". */
static char *
s_between(const char *from, const char *mark)
{
    const char *p = from ? strstr(from, mark) : NULL;
    if (!p)
        return pm_strdup("");
    p += strlen(mark);
    const char *end = strchr(p, '>');
    return end ? pm_strndup(p, (size_t)(end - p)) : pm_strdup("");
}

/* "... postfix/smtpd[123]: NOQUEUE: reject: RCPT from unknown[192.0.2.1]:
 * 554 5.7.1 <b@c>: Relay access denied; from=<a@d> to=<b@c> proto=ESMTP
 * helo=<h>" */
bool
pm_pf_reject_parse(const char *line, pm_pf_reject_t *out)
{
    memset(out, 0, sizeof *out);
    const char *p = strstr(line, ": reject: ");
    const char *prog = strstr(line, "smtpd[");
    if (!p || !prog || prog > p)
        return false;
    const char *qid = p;
    while (qid > line && qid[-1] != ' ')
        qid--;
    const char *stage = p + strlen(": reject: ");
    const char *from = strstr(stage, " from ");
    const char *client = from ? from + strlen(" from ") : NULL;
    const char *client_end = client ? strstr(client, "]: ") : NULL;
    if (!from || !client_end || qid == p)
        return false;
    const char *reply = client_end + strlen("]: ");
    const char *reply_end = strstr(reply, "; from=<");
    if (!reply_end)
        return false;
    out->queue_id = pm_strndup(qid, (size_t)(p - qid));
    out->stage = pm_strndup(stage, (size_t)(from - stage));
    out->client = pm_strndup(client, (size_t)(client_end + 1 - client));
    out->reply = pm_strndup(reply, (size_t)(reply_end - reply));
    out->from = s_between(reply_end, "; from=<");
    out->to = s_between(reply_end, " to=<");
    out->helo = s_between(reply_end, " helo=<");
    return true;
}

struct pm_pf_rejects_t {
    char *log;
    pm_pf_journal_t *journal; /* LOG is PM_PF_REJECTS_JOURNAL */
    pm_declog_t *declog;
    dev_t dev;
    ino_t ino;
    off_t offset;
    bool known; /* the log was seen: new lines from OFFSET on */
    bool warned;
};

pm_pf_rejects_t *
pm_pf_rejects_new(const char *log, const char *syslog_name, const char *dir,
                  size_t max_records, size_t max_bytes, char **why)
{
    if (pm_file_mkdir(dir, 0700, (gid_t)-1, why) != PM_OK)
        return NULL;
    pm_pf_journal_t *journal = NULL;
    if (strcmp(log, PM_PF_REJECTS_JOURNAL) == 0) {
        uid_t uid;
        gid_t gid;
        if (pm_priv_lookup("postfix", &uid, &gid, why) != PM_OK ||
            !(journal = pm_pf_journal_new(uid, syslog_name, why)))
            return NULL;
    }
    pm_declog_t *d = pm_declog_open(dir, max_records, max_bytes, why);
    if (!d) {
        pm_pf_journal_destroy(&journal);
        return NULL;
    }
    pm_pf_rejects_t *self = pm_calloc(1, sizeof *self);
    self->log = pm_strdup(log);
    self->journal = journal;
    self->declog = d;
    return self;
}

void
pm_pf_rejects_destroy(pm_pf_rejects_t **self_p)
{
    pm_pf_rejects_t *self = *self_p;
    if (!self)
        return;
    pm_declog_close(&self->declog);
    pm_pf_journal_destroy(&self->journal);
    free(self->log);
    free(self);
    *self_p = NULL;
}

/* Keeps refusal R (revision REV, at NOW). */
static bool
s_record(pm_pf_rejects_t *self, const pm_pf_reject_t *r, uint64_t rev,
         int64_t now)
{
    const char *key = pm_pf_reject_key(r->reply);
    char *evidence = pm_asprintf("%s from %s, HELO %s", r->stage, r->client,
                                 *r->helo ? r->helo : "(none)");
    const char *rcpts[] = {r->to};
    pm_decision_t d = {
        .time = now,
        .queue_id = r->queue_id,
        .message_id = "",
        .sender = r->from,
        .rcpts = rcpts,
        .n_rcpts = *r->to ? 1 : 0,
        .verdict = r->reply[0] == '4' ? "tempfailed" : "rejected",
        .reply = r->reply,
        .key = key ? key : "",
        .evidence = evidence,
        .revision = rev,
    };
    char *why = NULL;
    bool ok = pm_declog_append(self->declog, &d, &why) == PM_OK;
    if (!ok)
        pm_warn("Postfix's refusals: %s", why);
    free(why);
    free(evidence);
    return ok;
}

/* The lines in BUF (LEN bytes) up to its last newline: each refusal kept.
 * Returns the bytes taken (whole lines). */
static size_t
s_lines(pm_pf_rejects_t *self, char *buf, size_t len, uint64_t rev, int64_t now,
        size_t *kept)
{
    size_t taken = 0;
    for (;;) {
        char *nl = memchr(buf + taken, '\n', len - taken);
        if (!nl)
            return taken;
        *nl = 0;
        pm_pf_reject_t r;
        if (pm_pf_reject_parse(buf + taken, &r)) {
            *kept += s_record(self, &r, rev, now);
            pm_pf_reject_clear(&r);
        }
        taken = (size_t)(nl + 1 - buf);
    }
}

/* What the journal gained since the last poll. */
static size_t
s_poll_journal(pm_pf_rejects_t *self, uint64_t rev, int64_t now)
{
    char *buf;
    size_t len, kept = 0;
    int rc = pm_pf_journal_read(self->journal, PM_PF_REJECTS_READ, &buf, &len);
    if (rc < 0 && !self->warned)
        pm_warn("Postfix's refusals: the journal: %s", strerror(-rc));
    self->warned = rc < 0;
    if (len)
        s_lines(self, buf, len, rev, now, &kept);
    free(buf);
    return kept;
}

size_t
pm_pf_rejects_poll(pm_pf_rejects_t *self, uint64_t rev, int64_t now)
{
    if (self->journal)
        return s_poll_journal(self, rev, now);
    int fd = open(self->log, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (!self->warned)
            pm_warn("Postfix's refusals are not recorded: %s: %s", self->log,
                    fd < 0 ? strerror(errno) : "not a regular file");
        self->warned = true;
        if (fd >= 0)
            close(fd);
        return 0;
    }
    self->warned = false;
    if (!self->known) { /* from where it ends: no history with today's time */
        self->known = true;
        self->offset = st.st_size;
    } else if (st.st_ino != self->ino || st.st_dev != self->dev ||
               st.st_size < self->offset) {
        self->offset = 0; /* replaced, or cut */
    }
    self->dev = st.st_dev, self->ino = st.st_ino;
    size_t want =
        st.st_size > self->offset ? (size_t)(st.st_size - self->offset) : 0;
    if (want > PM_PF_REJECTS_READ)
        want = PM_PF_REJECTS_READ;
    size_t kept = 0;
    if (want) {
        char *buf = pm_malloc(want);
        ssize_t got = pread(fd, buf, want, self->offset);
        if (got > 0) {
            size_t taken = s_lines(self, buf, (size_t)got, rev, now, &kept);
            /* a line longer than a whole read is passed over */
            self->offset += taken                               ? (off_t)taken
                            : (size_t)got == PM_PF_REJECTS_READ ? got
                                                                : 0;
        }
        free(buf);
    }
    close(fd);
    return kept;
}
