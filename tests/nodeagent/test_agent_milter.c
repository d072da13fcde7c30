/* test_agent_milter.c - what an agent hands to the milter and takes from
 * it (the milter's user is assumed hostile).
 *
 * The DKIM keys: after each apply, the key files neither the applied
 * revision nor the one before it names are removed (a rotated or removed
 * key must not stay readable by the milter's group for ever); the
 * previous revision's stay for mail in flight; nothing but a regular file
 * named as the controller names keys is ever removed, and no link is
 * followed.
 *
 * The decision records a why query reads: one naming a key the filter
 * never decides by (Postfix's) is dropped, and a time in the future is
 * taken as now.
 *
 * The controller is fake (a ROUTER, CURVE server, as in test_failover);
 * the agent runs in-process with the noop backend.
 */
#include <criterion/criterion.h>

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fakectl.h"
#include "pm_agent.h"
#include "pm_declog.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"
#include "pm_policy.h"
#include "pm_wire.h"
#include "testdir.h"

#define S_WAIT_MS 10000
#define S_DIGEST(c)                                                            \
    c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
        c c c c c c c c c c c c c c c c c c c c c c c c c c c

/* An agent (noop backend) talking to a fake controller. */
typedef struct {
    zcert_t *server, *cert;
    pm_backend_t *b;
    fakectl_t c;
    zactor_t *agent;
} s_env_t;

/* Starts an agent with CFG's milter settings and waits for its HELLO
 * (whose sender the controller then talks to). */
static void
s_env_start(s_env_t *e, pm_agent_config_t cfg)
{
    e->server = zcert_new();
    e->cert = zcert_new();
    e->b = pm_backend_noop_new();
    fakectl_new(&e->c, e->server, 0);
    cfg.endpoint = e->c.endpoint;
    cfg.server_key = zcert_public_txt(e->server);
    cfg.cert = e->cert;
    cfg.name = "mx1";
    cfg.backend = e->b;
    cfg.heartbeat_ms = 50;
    cfg.dead_after_ms = 5000;
    cfg.milter_gid = -1;
    e->agent = pm_agent_new(&cfg);
    cr_assert(e->agent);
    cr_assert(fakectl_hello(&e->c, S_WAIT_MS), "the agent never said hello");
}

static void
s_env_stop(s_env_t *e)
{
    zactor_destroy(&e->agent);
    fakectl_destroy(&e->c);
    e->b->destroy(&e->b);
    zcert_destroy(&e->server);
    zcert_destroy(&e->cert);
}

/* Sends revision NUMBER (KIND), signing a.example with key ID, and that
 * key. */
static void
s_ctl_send_key(fakectl_t *c, Pm__Publication__Kind kind, uint64_t number,
               const char *digest, const char *id)
{
    Pm__Revision rev = PM__REVISION__INIT;
    rev.number = number;
    rev.digest = (char *)digest;
    rev.policy = pm_policy_new();
    Pm__DkimDomain *d = pm_malloc(sizeof *d);
    pm__dkim_domain__init(d);
    d->domain = pm_strdup("a.example");
    d->selector = pm_strdup("s1");
    d->key = pm_strdup(id);
    rev.policy->dkim_domains = pm_calloc(2, sizeof *rev.policy->dkim_domains);
    rev.policy->dkim_domains[0] = d;
    rev.policy->n_dkim_domains = 1;
    Pm__Secret sec = PM__SECRET__INIT, *secp = &sec;
    sec.id = (char *)id;
    sec.data.data = (uint8_t *)"-----BEGIN PRIVATE KEY-----\n";
    sec.data.len = 28;
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = kind;
    pub.head = number;
    pub.node = "mx1";
    pub.revision = &rev;
    pub.secrets = &secp;
    pub.n_secrets = 1;
    fakectl_send(c, &pub);
    pm_policy_free(&rev.policy);
}

static bool
s_exists(const char *dir, const char *name)
{
    char *path = pm_asprintf("%s/%s", dir, name);
    struct stat st;
    bool there = lstat(path, &st) == 0;
    free(path);
    return there;
}

#define S_KEY_A "a.example.s1.aaaaaaaaaaaa.pem"
#define S_KEY_B "a.example.s1.bbbbbbbbbbbb.pem"
#define S_KEY_C "a.example.s1.cccccccccccc.pem"

Test(agent_milter, keys_no_revision_in_force_names_are_removed)
{
    char dir[] = "/tmp/pm_agent_keys.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *milter = pm_asprintf("%s/milter", dir);
    char *keys = pm_asprintf("%s/dkim", milter);
    char *victim = pm_asprintf("%s/victim.pem", dir);
    cr_assert_eq(mkdir(milter, 0750), 0);
    cr_assert_eq(mkdir(keys, 0750), 0);
    cr_assert_eq(pm_file_write(victim, "v", 1, 0600, (gid_t)-1, NULL), PM_OK);
    /* named like keys, but a link and a directory; and a file not named
     * like a key at all: all left alone */
    char *link = pm_asprintf("%s/old.example.s1.dddddddddddd.pem", keys);
    char *sub = pm_asprintf("%s/sub.example.s1.eeeeeeeeeeee.pem", keys);
    char *other = pm_asprintf("%s/README", keys);
    cr_assert_eq(symlink(victim, link), 0);
    cr_assert_eq(mkdir(sub, 0700), 0);
    cr_assert_eq(pm_file_write(other, "x", 1, 0640, (gid_t)-1, NULL), PM_OK);

    s_env_t e = {0};
    s_env_start(&e, (pm_agent_config_t){.milter_dir = milter});
    fakectl_t *c = &e.c;

    s_ctl_send_key(c, PM__PUBLICATION__KIND__SNAPSHOT, 1, S_DIGEST("a"),
                   S_KEY_A);
    cr_assert(fakectl_applied(c, 1, S_WAIT_MS));
    cr_expect(s_exists(keys, S_KEY_A));
    s_ctl_send_key(c, PM__PUBLICATION__KIND__UPDATE, 2, S_DIGEST("b"), S_KEY_B);
    cr_assert(fakectl_applied(c, 2, S_WAIT_MS));
    cr_expect(s_exists(keys, S_KEY_A), "the previous revision's key went");
    cr_expect(s_exists(keys, S_KEY_B));
    s_ctl_send_key(c, PM__PUBLICATION__KIND__UPDATE, 3, S_DIGEST("c"), S_KEY_C);
    cr_assert(fakectl_applied(c, 3, S_WAIT_MS));
    cr_expect(!s_exists(keys, S_KEY_A), "a key no revision in force names "
                                        "stays");
    cr_expect(s_exists(keys, S_KEY_B), "the previous revision's key went");
    cr_expect(s_exists(keys, S_KEY_C));
    struct stat st;
    cr_expect_eq(lstat(link, &st), 0, "a link was removed");
    cr_expect_eq(stat(victim, &st), 0, "a link's target was removed");
    cr_expect_eq(stat(sub, &st), 0, "a directory was removed");
    cr_expect_eq(stat(other, &st), 0, "a file not named like a key went");

    s_env_stop(&e);
    free(link);
    free(sub);
    free(other);
    free(victim);
    free(keys);
    free(milter);
    testdir_remove(dir);
}

/* A WHY query's answer (the report for query ID), within S_WAIT_MS. */
static Pm__AgentReport *
s_ctl_why_answer(fakectl_t *c, uint64_t id)
{
    int64_t deadline = zclock_mono() + S_WAIT_MS;
    while (zclock_mono() < deadline) {
        Pm__AgentReport *r = fakectl_next(c, 200, NULL);
        if (r && r->kind == PM__AGENT_REPORT__KIND__WHY_ANSWER &&
            r->why_id == id)
            return r;
        if (r)
            pm__agent_report__free_unpacked(r, NULL);
    }
    return NULL;
}

static void
s_ctl_why(fakectl_t *c, uint64_t id, const char *sender)
{
    Pm__WhyQuery q = PM__WHY_QUERY__INIT;
    q.id = id;
    q.sender = (char *)sender;
    q.max = 100;
    Pm__Publication pub = PM__PUBLICATION__INIT;
    pub.kind = PM__PUBLICATION__KIND__WHY;
    pub.why = &q;
    fakectl_send(c, &pub);
}

/* A filter record of a@b at T, queue id QID, deciding by KEY. */
static char *
s_record(long long t, const char *qid, const char *key)
{
    return pm_asprintf("{\"t\":%lld,\"qid\":\"%s\",\"msgid\":\"\","
                       "\"from\":\"a@b\",\"rcpt\":[\"c@d\"],\"verdict\":"
                       "\"rejected\",\"reply\":\"554 5.7.1 no\",\"key\":"
                       "\"%s\",\"evidence\":\"x\",\"rev\":1}\n",
                       t, qid, key);
}

Test(agent_milter, forged_decision_records_are_not_believed)
{
    char dir[] = "/tmp/pm_agent_why.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *status = pm_asprintf("%s/status.json", dir);
    long long now = (long long)time(NULL);
    char *recs[] = {
        s_record(now - 10, "Q-REAL", "inbound.blocked_extensions"),
        /* Postfix's key: blames a check the filter never makes */
        s_record(now - 5, "Q-POSTFIX", "outbound.mynetworks"),
        /* a day ahead: would sort before everything real */
        s_record(now + 86400, "Q-FUTURE", ""),
    };
    char *log = pm_asprintf("%s%s%s", recs[0], recs[1], recs[2]);
    char *path = pm_asprintf("%s/%s", dir, PM_DECLOG_FILE);
    cr_assert_eq(pm_file_write(path, log, strlen(log), 0640, (gid_t)-1, NULL),
                 PM_OK);

    s_env_t e = {0};
    s_env_start(&e, (pm_agent_config_t){.milter_status = status});
    fakectl_t *c = &e.c;
    s_ctl_why(c, 7, "a@b");
    Pm__AgentReport *ans = s_ctl_why_answer(c, 7);
    cr_assert_not_null(ans, "no answer");
    long long after = (long long)time(NULL);
    bool real = false;
    for (size_t i = 0; i < ans->n_why; i++) {
        const Pm__WhyRecord *r = ans->why[i];
        cr_expect_str_neq(r->queue_id, "Q-POSTFIX",
                          "a record naming Postfix's key was believed");
        cr_expect_leq(r->time, after, "%s: %lld, later than now (%lld)",
                      r->queue_id, (long long)r->time, after);
        real |= strcmp(r->queue_id, "Q-REAL") == 0;
    }
    cr_expect(real, "the filter's own record is missing");
    cr_expect(strstr(ans->why_error, "1 malformed"), "%s", ans->why_error);
    pm__agent_report__free_unpacked(ans, NULL);

    s_env_stop(&e);
    for (size_t i = 0; i < 3; i++)
        free(recs[i]);
    free(log);
    free(path);
    free(status);
    testdir_remove(dir);
}

/* The milter's configured decision log size bounds what a why query
 * reads on the agent's thread: with decision_log_bytes_mb = 1, a file
 * past half of that (and one record) is not read at all. */
Test(agent_milter, why_reads_no_more_than_the_milter_keeps)
{
    char dir[] = "/tmp/pm_agent_why.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *status = pm_asprintf("%s/status.json", dir);
    char *conf = pm_asprintf("%s/milter.conf", dir);
    static const char conf_text[] = "# the milter's\nuser = nobody\n"
                                    "decision_log_bytes_mb = 1\n";
    cr_assert_eq(pm_file_write(conf, conf_text, strlen(conf_text), 0644,
                               (gid_t)-1, NULL),
                 PM_OK);
    char *one = s_record((long long)time(NULL), "Q", "");
    size_t n = (700u << 10) / strlen(one) + 1, len = strlen(one);
    char *log = pm_malloc(n * len + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(log + i * len, one, len);
    char *path = pm_asprintf("%s/%s", dir, PM_DECLOG_FILE);
    cr_assert_eq(pm_file_write(path, log, n * len, 0640, (gid_t)-1, NULL),
                 PM_OK);

    s_env_t e = {0};
    s_env_start(&e, (pm_agent_config_t){.milter_status = status,
                                        .milter_config = conf});
    fakectl_t *c = &e.c;
    s_ctl_why(c, 8, "a@b");
    Pm__AgentReport *ans = s_ctl_why_answer(c, 8);
    cr_assert_not_null(ans, "no answer");
    cr_expect_eq(ans->n_why, 0, "%zu records read", ans->n_why);
    cr_expect(*ans->why_error, "no error for a file past the milter's size");
    pm__agent_report__free_unpacked(ans, NULL);

    s_env_stop(&e);
    free(one);
    free(log);
    free(path);
    free(conf);
    free(status);
    testdir_remove(dir);
}
