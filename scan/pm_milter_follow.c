/* pm_milter_follow.c - the milter's two background threads: the follower
 * (the handed-over policy and the signature directory, checked by stat
 * every poll period; spamd's health and the status file each status
 * period) and the antivirus reloader (a new engine built off the mail
 * path whenever the policy's signatures or the databases changed, then
 * swapped in by pm_av). */
#include "pm_av.h"
#include "pm_clock.h"
#include "pm_handoff.h"
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_milter.h"
#include "pm_milter_run.h"
#include "pm_policy.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ---- signature fingerprints ------------------------------------------------
 */

static uint64_t
s_fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Names, sizes and mtimes of the files in DIR: changes when the agent
 * installs new databases. */
static uint64_t
s_dir_print(const char *dir)
{
    uint64_t h = 1469598103934665603ull;
    DIR *d = dir && *dir ? opendir(dir) : NULL;
    if (!d)
        return h;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t nlen = strlen(e->d_name);
        /* freshclam.dat is rewritten at every mirror check and is not a
         * database: a new engine costs seconds and, with the official
         * databases, a gigabyte */
        if (e->d_name[0] == '.' ||
            (nlen > 4 && strcmp(e->d_name + nlen - 4, ".dat") == 0))
            continue;
        char *path = pm_asprintf("%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            /* order-independent: readdir order may change */
            uint64_t f =
                s_fnv(1469598103934665603ull, e->d_name, strlen(e->d_name));
            f = s_fnv(f, &st.st_size, sizeof st.st_size);
            f = s_fnv(f, &st.st_mtim, sizeof st.st_mtim);
            h ^= f;
        }
        free(path);
    }
    closedir(d);
    return h;
}

static uint64_t
s_sig_print(const Pm__Policy *p)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; p && i < p->n_antivirus_custom_signatures; i++) {
        const Pm__CustomSignature *s = p->antivirus_custom_signatures[i];
        h = s_fnv(h, s->name, strlen(s->name) + 1);
        h = s_fnv(h, s->content.data, s->content.len);
    }
    bool enc = p && p->antivirus_block_encrypted_archives;
    return s_fnv(h, &enc, sizeof enc);
}

/* ---- the AV reloader thread ------------------------------------------------
 */

static void
s_av_load_once(pm_milter_t *self, Pm__Policy *want, uint64_t print)
{
    size_t n = want ? want->n_antivirus_custom_signatures : 0;
    pm_av_sig_t *sigs = pm_calloc(n + 1, sizeof *sigs);
    for (size_t i = 0; i < n; i++) {
        const Pm__CustomSignature *s = want->antivirus_custom_signatures[i];
        sigs[i] = (pm_av_sig_t){s->name, s->content.data, s->content.len};
    }
    char *why = NULL;
    int64_t t0 = pm_clock_ms();
    int rc = pm_av_load(self->av, self->o.sig_dir, sigs, n,
                        want && want->antivirus_block_encrypted_archives, &why);
    if (rc == PM_OK)
        pm_info("antivirus engine built in %lld ms (%zu custom files)",
                (long long)(pm_clock_ms() - t0), n);
    else
        pm_error("antivirus engine not rebuilt, the old one keeps scanning: "
                 "%s",
                 why ? why : pm_strerror(rc));
    free(why);
    free(sigs);
    pthread_mutex_lock(&self->mu);
    self->av_have = print;
    pthread_mutex_unlock(&self->mu);
}

void *
pm_milter_av_run(void *arg)
{
    pm_milter_t *self = arg;
    pthread_mutex_lock(&self->mu);
    while (!self->stop) {
        if (!self->av_want_policy || self->av_want == self->av_have) {
            pthread_cond_wait(&self->av_cond, &self->mu);
            continue;
        }
        Pm__Policy *want = pm_policy_dup(self->av_want_policy);
        uint64_t print = self->av_want;
        pthread_mutex_unlock(&self->mu);
        s_av_load_once(self, want, print);
        pm_policy_free(&want);
        pthread_mutex_lock(&self->mu);
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

/* Under self->mu: asks for an engine for POLICY's signatures (NULL when
 * antivirus is off: keep what is loaded, load nothing new). */
static void
s_av_want(pm_milter_t *self, const Pm__Policy *policy, uint64_t dir_print)
{
    if (!policy || !policy->antivirus_enabled)
        return;
    uint64_t print = s_sig_print(policy) ^ dir_print;
    if (print == self->av_want && self->av_want_policy)
        return;
    pm_policy_free(&self->av_want_policy);
    self->av_want_policy = pm_policy_dup(policy);
    self->av_want = print;
    pthread_cond_signal(&self->av_cond);
}

/* ---- the policy follower ----------------------------------------------------
 */

/* Identity of a file or directory as stat sees it: a change of inode,
 * size or mtime (ns) is a change; "" when it is not there. */
static void
s_print(const char *path, char *out, size_t size)
{
    struct stat st;
    if (!path || !*path || stat(path, &st) != 0) {
        snprintf(out, size, "-");
        return;
    }
    snprintf(out, size, "%llx.%llx.%lld.%ld", (unsigned long long)st.st_ino,
             (unsigned long long)st.st_size, (long long)st.st_mtim.tv_sec,
             st.st_mtim.tv_nsec);
}

/* Under self->mu: the sig dir print to build engines from. The first one
 * is used at once; a change waits a random 0..sig_jitter_ms (every node
 * sees a new database within a gossip round, and compiling the official
 * ones takes 20-60 s of CPU: a cluster doing it in the same second would
 * all be slow at once). */
static uint64_t
s_dir_current(pm_milter_t *self, uint64_t print, int64_t now)
{
    if (!self->dir_known) {
        self->dir_known = true;
        self->dir_seen = self->dir_used = print;
    } else if (print != self->dir_seen) {
        self->dir_seen = print;
        int j = self->o.sig_jitter_ms;
        self->dir_due =
            now + (j > 0 ? (int64_t)arc4random_uniform((uint32_t)j + 1) : 0);
        if (print != self->dir_used)
            pm_info("signature databases changed; loading them in %lld ms",
                    (long long)(self->dir_due - now));
    }
    if (now >= self->dir_due)
        self->dir_used = self->dir_seen;
    return self->dir_used;
}

/* Reads the handed-off revision and swaps in a new snapshot; on any error
 * the previous snapshot stays in force and the error is reported. */
static void
s_load(pm_milter_t *self)
{
    Pm__Revision *rev = NULL;
    char *why = NULL;
    pm_mpolicy_t *snap = NULL;
    uint64_t dir_print = s_dir_print(self->o.sig_dir);
    int rc = pm_handoff_read(self->o.policy_file, &rev, &why);
    if (rc == PM_OK) {
        Pm__Policy *node = pm_policy_for_node(rev->policy, self->o.node);
        snap = pm_mpolicy_new(node, rev->number, self->o.key_dir, &why);
        pm_policy_free(&node);
    }
    pthread_mutex_lock(&self->mu);
    free(self->policy_error);
    self->policy_error = why ? pm_strdup(why) : NULL;
    if (snap) {
        pm_mpolicy_t *old = self->cur;
        self->cur = snap;
        self->head = rev->number;
        pm_mpolicy_unref(&old);
        s_av_want(self, pm_mpolicy_policy(snap),
                  s_dir_current(self, dir_print, pm_clock_ms()));
    }
    pthread_mutex_unlock(&self->mu);
    if (snap)
        pm_info("policy revision %llu in force",
                (unsigned long long)pm_mpolicy_rev(snap));
    else if (rc == PM_ENOTFOUND)
        pm_info("no policy handed over yet (%s); mail is tempfailed",
                self->o.policy_file);
    else
        pm_error("policy not loaded (keeping the previous one): %s", why);
    free(why);
    if (rev)
        pm__revision__free_unpacked(rev, NULL);
}

/* One cheap check: two stat calls; a reload only when the handoff file or
 * the key dir changed. */
void
pm_milter_poll(pm_milter_t *self)
{
    char print[96], keys[48];
    s_print(self->o.policy_file, print, sizeof print);
    s_print(self->o.key_dir, keys, sizeof keys);
    strncat(print, "/", sizeof print - strlen(print) - 1);
    strncat(print, keys, sizeof print - strlen(print) - 1);
    if (strcmp(print, self->handoff_print) == 0)
        return;
    memcpy(self->handoff_print, print, sizeof print);
    s_load(self);
}

void *
pm_milter_follow_run(void *arg)
{
    pm_milter_t *self = arg;
    int64_t next_status = 0, next_sig = pm_clock_ms() + self->o.sig_poll_ms;
    pthread_mutex_lock(&self->mu);
    while (!self->stop) {
        pthread_mutex_unlock(&self->mu);
        pm_milter_poll(self);
        int64_t now = pm_clock_ms();
        if (now >= next_sig) {
            uint64_t dir_print = s_dir_print(self->o.sig_dir);
            pm_mpolicy_t *cur = pm_milter_policy(self);
            pthread_mutex_lock(&self->mu);
            s_av_want(self, pm_mpolicy_policy(cur),
                      s_dir_current(self, dir_print, now));
            int64_t due = self->dir_due;
            pthread_mutex_unlock(&self->mu);
            pm_mpolicy_unref(&cur);
            next_sig = now + self->o.sig_poll_ms;
            if (due > now && due < next_sig)
                next_sig = due;
        }
        if (now >= next_status && *self->o.status_dir) {
            pm_milter_spam_ping(self);
            pm_milter_write_status(self);
            next_status = now + self->o.status_ms;
        }
        pthread_mutex_lock(&self->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)self->o.poll_ms * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        if (!self->stop)
            pthread_cond_timedwait(&self->stop_cond, &self->mu, &ts);
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}
