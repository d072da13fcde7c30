/* test_scanstatus.c - the milter's status as the agent reads it: whatever
 * the unprivileged side puts there (a FIFO, a link, a huge or broken file,
 * a date in the future or none) turns into "down" with the reason,
 * quickly; a milter on another revision, or signing for fewer domains
 * than the policy names, is reported; details stay bounded. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pm_error.h"
#include "pm_mem.h"
#include "pm_policy.h"
#include "pm_scanstatus.h"
#include "pm_wire.h"

static char s_dir[64], s_path[96];

static void
s_setup(void)
{
    strcpy(s_dir, "/tmp/pm-test-scanstatus.XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    snprintf(s_path, sizeof s_path, "%s/status.json", s_dir);
}

static void
s_teardown(void)
{
    char *cmd = pm_asprintf("rm -rf %s", s_dir);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
}

TestSuite(scanstatus, .init = s_setup, .fini = s_teardown);

static Pm__Policy *
s_policy(size_t n_dkim)
{
    Pm__Policy *p = pm_policy_new();
    p->antivirus_enabled = true;
    /* custom signatures only, by choice: tests below name databases */
    for (size_t i = 0; i < p->n_antivirus_databases; i++)
        free(p->antivirus_databases[i]);
    p->n_antivirus_databases = 0;
    p->antispam_enabled = true;
    p->n_dkim_domains = n_dkim;
    p->dkim_domains = pm_calloc(n_dkim + 1, sizeof *p->dkim_domains);
    for (size_t i = 0; i < n_dkim; i++) {
        Pm__DkimDomain *d = pm_malloc(sizeof *d);
        pm__dkim_domain__init(d);
        d->domain = pm_asprintf("d%zu.example", i);
        d->selector = pm_strdup("s1");
        d->key = pm_strdup("k");
        p->dkim_domains[i] = d;
    }
    return p;
}

static void
s_write_raw(const char *text)
{
    FILE *f = fopen(s_path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* TEXT as the status file, dated now as the milter dates it (a "time"
 * first in an object that has none). */
static void
s_write(const char *text)
{
    if (text[0] != '{' || strstr(text, "\"time\"")) {
        s_write_raw(text);
        return;
    }
    char *dated =
        pm_asprintf("{\"time\": %lld, %s", (long long)time(NULL), text + 1);
    s_write_raw(dated);
    free(dated);
}

static const char s_ok[] =
    "{\"policy\": {\"revision\": 7, \"loaded\": true, \"error\": null},"
    " \"antivirus\": {\"loaded\": true, \"signatures\": 3,"
    " \"db_age_seconds\": null, \"last_error\": null},"
    " \"antispam\": {\"reachable\": true, \"latency_ms\": 4, \"checked\": 1},"
    " \"dkim\": {\"domains\": [{\"domain\": \"d0.example\", \"selector\":"
    " \"s1\", \"usable\": true, \"error\": null}],"
    " \"usable\": [\"d0.example\"]}}";

/* Fills a status for POLICY at revision APPLIED. Caller frees. */
static Pm__NodeStatus *
s_fill(const Pm__Policy *policy, uint64_t applied)
{
    Pm__NodeStatus *st = pm_malloc(sizeof *st);
    pm__node_status__init(st);
    pm_scanstatus_fill(s_path, policy, applied, 10, st);
    return st;
}

Test(scanstatus, healthy_file_is_ok)
{
    Pm__Policy *p = s_policy(0);
    s_write(s_ok);
    Pm__NodeStatus *st = s_fill(p, 7);
    cr_expect_eq(st->antivirus->state, PM__SERVICE_STATUS__STATE__OK);
    cr_expect_eq(st->antispam->state, PM__SERVICE_STATUS__STATE__OK);
    cr_expect_eq(st->dkim->state, PM__SERVICE_STATUS__STATE__DISABLED);
    pm__node_status__free_unpacked(st, NULL);
    pm_policy_free(&p);
}

Test(scanstatus, fifo_is_down_and_does_not_block)
{
    Pm__Policy *p = s_policy(0);
    cr_assert_eq(mkfifo(s_path, 0600), 0);
    Pm__NodeStatus *st = s_fill(p, 7);
    cr_expect_eq(st->antivirus->state, PM__SERVICE_STATUS__STATE__DOWN);
    cr_expect(strstr(st->antivirus->detail, "not a regular file"), "%s",
              st->antivirus->detail);
    pm__node_status__free_unpacked(st, NULL);
    pm_policy_free(&p);
}

Test(scanstatus, symlink_is_refused)
{
    Pm__Policy *p = s_policy(0);
    char *real = pm_asprintf("%s/real.json", s_dir);
    FILE *f = fopen(real, "w");
    fputs(s_ok, f);
    fclose(f);
    cr_assert_eq(symlink(real, s_path), 0);
    Pm__NodeStatus *st = s_fill(p, 7);
    cr_expect_eq(st->antispam->state, PM__SERVICE_STATUS__STATE__DOWN);
    cr_expect(strstr(st->antispam->detail, "symbolic link"), "%s",
              st->antispam->detail);
    pm__node_status__free_unpacked(st, NULL);
    pm_policy_free(&p);
    free(real);
}

Test(scanstatus, oversized_is_down_unread)
{
    Pm__Policy *p = s_policy(0);
    s_write("");
    cr_assert_eq(truncate(s_path, 512L << 20), 0); /* sparse: no disk */
    Pm__NodeStatus *st = s_fill(p, 7);
    cr_expect_eq(st->antivirus->state, PM__SERVICE_STATUS__STATE__DOWN);
    cr_expect(strstr(st->antivirus->detail, "allowed"), "%s",
              st->antivirus->detail);
    pm__node_status__free_unpacked(st, NULL);
    pm_policy_free(&p);
}

Test(scanstatus, malformed_json_is_down)
{
    Pm__Policy *p = s_policy(0);
    s_write("{\"policy\": ");
    Pm__NodeStatus *st = s_fill(p, 7);
    cr_expect_eq(st->antivirus->state, PM__SERVICE_STATUS__STATE__DOWN);
    cr_expect(strstr(st->antivirus->detail, "not valid JSON"), "%s",
              st->antivirus->detail);
    pm__node_status__free_unpacked(st, NULL);
    pm_policy_free(&p);
}

Test(scanstatus, milter_on_another_revision_is_reported)
{
    Pm__Policy *p = s_policy(0);
    s_write(s_ok); /* the milter says 7 */
    Pm__NodeStatus *st = s_fill(p, 8);
    cr_expect_eq(st->antivirus->state, PM__SERVICE_STATUS__STATE__DEGRADED);
    cr_expect(strstr(st->antivirus->detail, "enforces revision 7, node "
                                            "applied 8"),
              "%s", st->antivirus->detail);
    cr_expect_eq(st->antispam->state, PM__SERVICE_STATUS__STATE__DEGRADED);
    pm__node_status__free_unpacked(st, NULL);
    pm_policy_free(&p);
}

/* 1024 domains without a usable key: the detail names ten and counts the
 * rest, so a report stays within the wire's limits. */
Test(scanstatus, many_unusable_dkim_domains_stay_bounded)
{
    Pm__Policy *p = s_policy(1024);
    char *buf = pm_strdup("{\"policy\": {\"revision\": 7}, \"dkim\": "
                          "{\"domains\": [");
    for (int i = 0; i < 1024; i++) {
        char *more = pm_asprintf("%s%s{\"domain\": \"d%d.example\", "
                                 "\"usable\": false}",
                                 buf, i ? ", " : "", i);
        free(buf);
        buf = more;
    }
    char *all = pm_asprintf("%s]}}", buf);
    s_write(all);
    Pm__NodeStatus *st = s_fill(p, 7);
    cr_expect_eq(st->dkim->state, PM__SERVICE_STATUS__STATE__DEGRADED);
    cr_expect(strlen(st->dkim->detail) < 400, "%zu bytes",
              strlen(st->dkim->detail));
    cr_expect(strstr(st->dkim->detail, "and 1014 more"), "%s",
              st->dkim->detail);
    pm__node_status__free_unpacked(st, NULL);
    pm_policy_free(&p);
    free(buf);
    free(all);
}

/* The text alone, without a file: what the path version parses. */
Test(scanstatus, from_memory_matches_the_file)
{
    Pm__Policy *p = s_policy(1);
    Pm__NodeStatus *st = pm_malloc(sizeof *st);
    pm__node_status__init(st);
    /* not NUL-terminated: only LEN bytes are read */
    size_t len = strlen(s_ok);
    char *text = pm_malloc(len);
    memcpy(text, s_ok, len);
    pm_scanstatus_fill_data(text, len, p, 7, st);
    cr_expect_eq(st->antivirus->state, PM__SERVICE_STATUS__STATE__OK);
    cr_expect_eq(st->antispam->state, PM__SERVICE_STATUS__STATE__OK);
    cr_expect_eq(st->dkim->state, PM__SERVICE_STATUS__STATE__OK);
    /* filled again: the old entries are replaced, not leaked */
    pm_scanstatus_fill_data(text, len - 1, p, 7, st);
    cr_expect_eq(st->antivirus->state, PM__SERVICE_STATUS__STATE__DOWN);
    cr_expect(strstr(st->antivirus->detail, "not valid JSON"), "%s",
              st->antivirus->detail);
    pm_scanstatus_fill_data(NULL, 5, p, 7, st);
    cr_expect_eq(st->dkim->state, PM__SERVICE_STATUS__STATE__DOWN);
    pm_scanstatus_fill_data("[1]", 3, NULL, 7, st);
    cr_expect_eq(st->antispam->state, PM__SERVICE_STATUS__STATE__DISABLED);
    pm__node_status__free_unpacked(st, NULL);
    pm_policy_free(&p);
    free(text);
}

/* Found by fuzz_scanstatus: jansson quotes the broken input in its error
 * message, and cutting a string at a byte count can split a character;
 * either made a detail that is not UTF-8, and the controller then refused
 * the node's whole report. Details now always pass pm_wire. */
static void
s_expect_wire_ok(const Pm__Policy *p, const char *text, size_t len)
{
    Pm__NodeStatus *st = pm_malloc(sizeof *st);
    pm__node_status__init(st);
    st->name = pm_strdup("n1");
    pm_scanstatus_fill_data(text, len, p, 8, st);
    size_t n = 0;
    uint8_t *buf = pm_wire_pack(&st->base, &n);
    Pm__NodeStatus *back = NULL;
    char *why = NULL;
    cr_expect_eq(pm_wire_unpack_node_status(buf, n, &back, &why), PM_OK, "%s",
                 why);
    free(why);
    if (back)
        pm__node_status__free_unpacked(back, NULL);
    free(buf);
    pm__node_status__free_unpacked(st, NULL);
}

Test(scanstatus, milter_text_stays_valid_utf8)
{
    Pm__Policy *p = s_policy(1);
    static const char bad[] = {'{', '"',  '$',    ' ',    '{', '\xde', '\x93',
                               'e', '\\', '\xde', '\x93', 'e', '\xb6', '\xe1',
                               '0', 'u',  '0',    '\x8a', '&'};
    s_expect_wire_ok(p, bad, sizeof bad);
    /* 199 ASCII bytes, then a two-byte character across byte 200 */
    char *long_err = pm_asprintf(
        "{\"policy\": {\"revision\": 7, \"error\": \"%0199d\xc3\xa9\"},"
        " \"antivirus\": {\"loaded\": false, \"last_error\": "
        "\"%0199d\xc3\xa9\"}, \"antispam\": {\"checked\": 1, "
        "\"last_error\": \"%0199d\xc3\xa9\"}, \"dkim\": {\"domains\": "
        "[{\"domain\": \"%0252d\xc3\xa9\"}]}}",
        0, 0, 0, 0);
    s_expect_wire_ok(p, long_err, strlen(long_err));
    free(long_err);
    pm_policy_free(&p);
}

/* The agent's signature actor says what the node holds; the milter's file
 * says what its engine was built from. */
static void
s_add_db(Pm__NodeStatus *st, const char *name, unsigned version,
         const char *error)
{
    st->databases = pm_realloc(st->databases,
                               (st->n_databases + 1) * sizeof *st->databases);
    Pm__SignatureDb *db = pm_malloc(sizeof *db);
    pm__signature_db__init(db);
    db->name = pm_strdup(name);
    db->version = version;
    db->error = pm_strdup(error);
    st->databases[st->n_databases++] = db;
}

static const char s_loaded_test6[] =
    "{\"policy\": {\"revision\": 7, \"loaded\": true, \"error\": null},"
    " \"antivirus\": {\"loaded\": true, \"signatures\": 40,"
    " \"last_error\": null, \"databases\": [{\"name\": \"test\","
    " \"version\": 6, \"sigs\": 37, \"built\": 1}, {\"name\": 7},"
    " {\"name\": \"other\", \"version\": -3}]},"
    " \"antispam\": {\"reachable\": true, \"latency_ms\": 4, \"checked\": 1},"
    " \"dkim\": {\"domains\": []}}";

static void
s_want_test(Pm__Policy *p)
{
    p->antivirus_databases =
        pm_realloc(p->antivirus_databases, 2 * sizeof *p->antivirus_databases);
    p->antivirus_databases[0] = pm_strdup("test");
    p->n_antivirus_databases = 1;
}

/* Custom signatures only while the policy names databases: degraded, not
 * ok (a node scanning with a handful of signatures is not protected). */
Test(scanstatus, no_database_loaded_is_degraded)
{
    Pm__Policy *p = s_policy(0);
    s_want_test(p);
    s_write(s_ok);
    Pm__NodeStatus *st = s_fill(p, 7);
    cr_expect_eq(st->antivirus->state, PM__SERVICE_STATUS__STATE__DEGRADED);
    cr_expect(strstr(st->antivirus->detail, "no ClamAV database loaded yet"),
              "%s", st->antivirus->detail);
    pm__node_status__free_unpacked(st, NULL);
    pm_policy_free(&p);
}

Test(scanstatus, loaded_database_is_ok_and_named)
{
    Pm__Policy *p = s_policy(0);
    s_want_test(p);
    s_write(s_loaded_test6);
    Pm__NodeStatus *st = pm_malloc(sizeof *st);
    pm__node_status__init(st);
    s_add_db(st, "test", 6, "");
    pm_scanstatus_fill(s_path, p, 7, 10, st);
    cr_expect_eq(st->antivirus->state, PM__SERVICE_STATUS__STATE__OK, "%s",
                 st->antivirus->detail);
    cr_expect_eq(st->databases[0]->loaded_version, 6);
    cr_expect(strstr(st->antivirus->detail, "test 6"), "%s",
              st->antivirus->detail);
    pm__node_status__free_unpacked(st, NULL);
    pm_policy_free(&p);
}

Test(scanstatus, database_problem_is_degraded)
{
    Pm__Policy *p = s_policy(0);
    s_want_test(p);
    s_write(s_loaded_test6);
    Pm__NodeStatus *st = pm_malloc(sizeof *st);
    pm__node_status__init(st);
    s_add_db(st, "test", 6, "every mirror is cooling down");
    pm_scanstatus_fill(s_path, p, 7, 10, st);
    cr_expect_eq(st->antivirus->state, PM__SERVICE_STATUS__STATE__DEGRADED);
    cr_expect(
        strstr(st->antivirus->detail, "test: every mirror is cooling down"),
        "%s", st->antivirus->detail);
    pm__node_status__free_unpacked(st, NULL);
    pm_policy_free(&p);
}

Test(scanstatus, verdict_counters_are_read_and_bounded)
{
    Pm__Policy *p = s_policy(0);
    p->antivirus_enabled = p->antispam_enabled = false; /* read all the same */
    s_write("{\"policy\": {\"revision\": 7}, \"messages\": {\"accepted\": 10,"
            " \"spam_tagged\": 2, \"discarded\": 1, \"rejected_attachment\": 3,"
            " \"rejected_virus\": 4, \"rejected_dkim\": 5,"
            " \"rejected_other\": -6, \"tempfailed\": \"many\"}}");
    Pm__NodeStatus *st = s_fill(p, 7);
    cr_assert_not_null(st->messages);
    cr_expect_eq(st->messages->accepted, 10);
    cr_expect_eq(st->messages->spam_tagged, 2);
    cr_expect_eq(st->messages->spam_discarded, 1);
    cr_expect_eq(st->messages->rejected_attachment, 3);
    cr_expect_eq(st->messages->rejected_virus, 4);
    cr_expect_eq(st->messages->rejected_dkim, 5);
    cr_expect_eq(st->messages->rejected_other, 0, "negative: 0");
    cr_expect_eq(st->messages->tempfailed, 0, "not a number: 0");
    pm__node_status__free_unpacked(st, NULL);
    s_write(s_ok); /* an older milter: no counters, none reported */
    st = s_fill(p, 7);
    cr_expect_null(st->messages);
    pm__node_status__free_unpacked(st, NULL);
    pm_policy_free(&p);
}

/* The milter's user sets the file's mtime: one in the future kept a dead
 * milter "fresh" for ever. */
Test(scanstatus, mtime_in_the_future_is_stale)
{
    Pm__Policy *p = s_policy(0);
    s_write(s_ok);
    struct timespec ts[2] = {{.tv_sec = time(NULL) + 3600},
                             {.tv_sec = time(NULL) + 3600}};
    cr_assert_eq(utimensat(AT_FDCWD, s_path, ts, 0), 0);
    Pm__NodeStatus *st = s_fill(p, 7);
    cr_expect_eq(st->antivirus->state, PM__SERVICE_STATUS__STATE__DOWN);
    cr_expect(strstr(st->antivirus->detail, "in the future"), "%s",
              st->antivirus->detail);
    pm__node_status__free_unpacked(st, NULL);
    pm_policy_free(&p);
}

/* A fresh mtime is not enough: the status says when the milter wrote it,
 * and that must be fresh too (a hung milter's file, touched). */
Test(scanstatus, the_status_own_time_must_be_fresh)
{
    Pm__Policy *p = s_policy(0);
    long long now = (long long)time(NULL);
    const char *rest = s_ok + 1;
    char *texts[] = {
        pm_asprintf("{\"time\": %lld, %s", now - 100, rest),
        pm_asprintf("{\"time\": %lld, %s", now + 100, rest),
        pm_asprintf("{\"time\": \"now\", %s", rest),
        pm_asprintf("%s", s_ok), /* written raw: no time at all */
    };
    const char *want[] = {"100 s old", "in the future", "no time", "no time"};
    for (size_t i = 0; i < 4; i++) {
        s_write_raw(texts[i]);
        Pm__NodeStatus *st = s_fill(p, 7);
        cr_expect_eq(st->antispam->state, PM__SERVICE_STATUS__STATE__DOWN,
                     "%zu: %s", i, st->antispam->detail);
        cr_expect(strstr(st->antispam->detail, want[i]), "%zu: %s", i,
                  st->antispam->detail);
        pm__node_status__free_unpacked(st, NULL);
        free(texts[i]);
    }
    pm_policy_free(&p);
}

/* Every domain the milter lists is usable, but it lists fewer than the
 * policy names: it does not sign for the others, so not ok. */
Test(scanstatus, dkim_for_fewer_domains_than_the_policy_is_not_ok)
{
    Pm__Policy *p = s_policy(3);
    s_write(s_ok); /* d0.example only */
    Pm__NodeStatus *st = s_fill(p, 7);
    cr_expect_eq(st->dkim->state, PM__SERVICE_STATUS__STATE__DEGRADED);
    cr_expect(
        strstr(st->dkim->detail, "does not sign for: d1.example, d2.example"),
        "%s", st->dkim->detail);
    pm__node_status__free_unpacked(st, NULL);
    /* none listed at all */
    s_write("{\"policy\": {\"revision\": 7}, \"dkim\": {\"domains\": [],"
            " \"usable\": []}}");
    st = s_fill(p, 7);
    cr_expect_eq(st->dkim->state, PM__SERVICE_STATUS__STATE__DEGRADED, "%s",
                 st->dkim->detail);
    pm__node_status__free_unpacked(st, NULL);
    /* the policy's one domain, signed (any case): ok */
    Pm__Policy *one = s_policy(1);
    free(one->dkim_domains[0]->domain);
    one->dkim_domains[0]->domain = pm_strdup("D0.Example");
    s_write(s_ok);
    st = s_fill(one, 7);
    cr_expect_eq(st->dkim->state, PM__SERVICE_STATUS__STATE__OK, "%s",
                 st->dkim->detail);
    pm__node_status__free_unpacked(st, NULL);
    pm_policy_free(&one);
    pm_policy_free(&p);
}
