/* test_standby.c - what a standby controller copies (REPLICATE, through
 * pm_ctld_handle over real stores) and how it applies it (pm_store_follow,
 * pm_replica_apply); a standby's refusals. No socket is used: the peer
 * link and the promotion are driven end to end by test_standby.sh. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pm_ctld.h"
#include "pm_ctld_private.h"
#include "pm_error.h"
#include "pm_keys.h"
#include "pm_policy.h"
#include "pm_replica.h"
#include "pm_store.h"
#include "pm_wire.h"
#include "testdir.h"

static char s_dir[64];
static char s_path[256];
static pm_store_t *s_primary, *s_standby;
static pm_ctld_t *s_ctld;
static zcert_t *s_cert;

static const char *
s_at(const char *rel)
{
    snprintf(s_path, sizeof s_path, "%s/%s", s_dir, rel);
    return s_path;
}

static void
s_setup(void)
{
    strcpy(s_dir, "/tmp/pm_standby_test.XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    char *why = NULL;
    s_cert = pm_keys_controller(s_at("a"), &why);
    cr_assert_not_null(s_cert, "%s", why ? why : "");
    cr_assert_eq(pm_store_open(s_at("a/store"), 0, 0, &s_primary), PM_OK);
    mkdir(s_at("b"), 0700);
    cr_assert_eq(pm_store_open(s_at("b/store"), 0, 0, &s_standby), PM_OK);
    char clients[256];
    snprintf(clients, sizeof clients, "%s/a/clients", s_dir);
    s_ctld =
        pm_ctld_new(s_primary, "inproc://test-standby", s_cert, clients, &why);
    cr_assert_not_null(s_ctld, "%s", why ? why : "");
    mkdir(s_at("b/clients"), 0755);
}

static void
s_teardown(void)
{
    pm_ctld_destroy(&s_ctld);
    pm_store_close(&s_primary);
    pm_store_close(&s_standby);
    zcert_destroy(&s_cert);
    testdir_remove(s_dir);
}

TestSuite(standby, .init = s_setup, .fini = s_teardown);

static void
s_commit(const char *admin)
{
    Pm__Policy *p = pm_policy_new();
    Pm__Edit e = PM__EDIT__INIT, *ep = &e;
    e.key = "inbound.admin_address";
    e.value = (char *)admin;
    pm_diag_t *d = pm_diag_new("test");
    cr_assert_eq(pm_policy_edit(&p, NULL, &ep, 1, d), 0);
    pm_diag_destroy(&d);
    char digest[65];
    pm_policy_digest(p, digest);
    pm_commit_t info = {.author = "alice",
                        .message = admin,
                        .expect_rev = PM_REV_ANY,
                        .digest = digest};
    uint64_t rev = 0;
    cr_assert_eq(pm_store_commit(s_primary, p, &info, &rev), PM_OK);
    pm_policy_free(&p);
}

static Pm__Response *
s_replicate(uint64_t rev, const char *head_digest, const char *replica)
{
    Pm__Request req = PM__REQUEST__INIT;
    req.op = PM__REQUEST__OP__REPLICATE;
    req.expect_rev = -1;
    req.rev = rev;
    req.head_digest = (char *)(head_digest ? head_digest : "");
    req.replica_digest = (char *)(replica ? replica : "");
    size_t len = 0;
    uint8_t *buf = pm_ctld_handle(s_ctld, &req, "controller", &len);
    Pm__Response *resp = NULL;
    char *why = NULL;
    cr_assert_eq(pm_wire_unpack_response(buf, len, &resp, &why), PM_OK, "%s",
                 why ? why : "");
    free(buf);
    return resp;
}

/* What the standby does with an answer. */
static void
s_apply(const Pm__Response *resp)
{
    for (size_t i = 0; i < resp->n_history; i++)
        cr_assert_eq(pm_store_follow(s_standby, resp->history[i]), PM_OK);
    char *why = NULL;
    if (*resp->replica_digest)
        cr_assert_eq(pm_replica_apply(s_standby, s_at("b/clients"),
                                      resp->secrets, resp->n_secrets,
                                      resp->keys, resp->n_keys, &why),
                     0, "%s", why ? why : "");
}

Test(standby, a_standby_becomes_an_exact_copy)
{
    s_commit("one@example.com");
    s_commit("two@example.com");
    cr_assert_eq(pm_store_secret_put(s_primary, "dkim-example", "PEM", 3),
                 PM_OK);
    Pm__Response *r = s_replicate(0, NULL, NULL);
    cr_assert_eq(r->status, PM__RESPONSE__STATUS__OK, "%s", r->error);
    cr_assert_eq(r->n_history, 2);
    cr_assert_not_null(r->history[1]->policy, "policies travel");
    cr_assert_eq(r->n_secrets, 1);
    cr_assert_geq(r->n_keys, 2, "the admin's key and the controller's");
    cr_assert_eq(r->head, 2);
    cr_assert_not(r->standby);
    s_apply(r);
    pm__response__free_unpacked(r, NULL);

    /* the standby's own view now has the primary's digest */
    char *why = NULL;
    pm_replica_t *a = pm_replica_read(s_primary, s_at("a/clients"), &why);
    pm_replica_t *b = pm_replica_read(s_standby, s_at("b/clients"), &why);
    cr_assert(a && b);
    cr_assert_str_eq(a->digest, b->digest);
    Pm__Revision *ra = NULL, *rb = NULL;
    cr_assert_eq(pm_store_get(s_primary, 2, &ra), PM_OK);
    cr_assert_eq(pm_store_get(s_standby, 2, &rb), PM_OK);
    cr_assert_str_eq(ra->digest, rb->digest);
    cr_assert_str_eq(ra->author, rb->author);
    cr_assert_eq(ra->time, rb->time);

    /* up to date: nothing more, and no secrets again */
    r = s_replicate(2, rb->digest, b->digest);
    cr_assert_eq(r->status, PM__RESPONSE__STATUS__OK);
    cr_assert_eq(r->n_history, 0);
    cr_assert_eq(r->n_secrets, 0);
    cr_assert_str_empty(r->replica_digest);
    pm__response__free_unpacked(r, NULL);
    pm__revision__free_unpacked(ra, NULL);
    pm__revision__free_unpacked(rb, NULL);
    pm_replica_destroy(&a);
    pm_replica_destroy(&b);
}

Test(standby, pruned_revisions_are_passed_over)
{
    cr_assert_eq(pm_store_set_retention(s_primary, 2), PM_OK);
    const char *admins[] = {"1@example.com", "2@example.com", "3@example.com",
                            "4@example.com", "5@example.com"};
    for (size_t i = 0; i < 5; i++)
        s_commit(admins[i]);
    Pm__Response *r = s_replicate(0, NULL, NULL);
    cr_assert_eq(r->status, PM__RESPONSE__STATUS__OK, "%s", r->error);
    cr_assert_eq(r->n_history, 2);
    cr_assert_eq(r->history[0]->number, 4);
    cr_assert_eq(r->history[1]->number, 5);
    pm__response__free_unpacked(r, NULL);
}

/* The primary's controller again, as it starts: it reads the rollout. */
static void
s_restart_primary(void)
{
    pm_ctld_destroy(&s_ctld);
    char clients[256], *why = NULL;
    snprintf(clients, sizeof clients, "%s/a/clients", s_dir);
    s_ctld =
        pm_ctld_new(s_primary, "inproc://test-standby", s_cert, clients, &why);
    cr_assert_not_null(s_ctld, "%s", why ? why : "");
}

/* A canary push's revision is on its canaries only: a standby promoted
 * with it as its head would send it to every node (it has no rollout
 * holding it back). It is replicated once the push passed. */
Test(standby, a_canary_revision_waits_for_its_push)
{
    s_commit("one@example.com");
    s_commit("two@example.com");
    Pm__RolloutSpec spec = PM__ROLLOUT_SPEC__INIT;
    spec.service = (char *)"";
    spec.policy_rev = 2;
    spec.revert_rev = 1;
    Pm__Rollout ro = PM__ROLLOUT__INIT;
    ro.id = 7;
    ro.state = PM__ROLLOUT__STATE__HALTED;
    ro.spec = &spec;
    cr_assert_eq(pm_store_rollout_put(s_primary, &ro), PM_OK);
    s_restart_primary();
    Pm__Response *r = s_replicate(0, NULL, NULL);
    cr_assert_eq(r->status, PM__RESPONSE__STATUS__OK, "%s", r->error);
    cr_expect_eq(r->head, 1);
    cr_expect_eq(r->n_history, 1);
    pm__response__free_unpacked(r, NULL);

    ro.state = PM__ROLLOUT__STATE__DONE;
    cr_assert_eq(pm_store_rollout_put(s_primary, &ro), PM_OK);
    s_restart_primary();
    r = s_replicate(0, NULL, NULL);
    cr_expect_eq(r->head, 2);
    cr_expect_eq(r->n_history, 2);
    pm__response__free_unpacked(r, NULL);
}

Test(standby, a_diverged_standby_is_told_so)
{
    s_commit("one@example.com");
    s_commit("two@example.com");
    char other[65];
    memset(other, 'a', 64);
    other[64] = 0;
    Pm__Response *r = s_replicate(2, other, NULL);
    cr_assert_eq(r->status, PM__RESPONSE__STATUS__CONFLICT);
    cr_assert(strstr(r->error, "diverged"), "%s", r->error);
    cr_assert_eq(r->n_history, 0);
    pm__response__free_unpacked(r, NULL);
    r = s_replicate(5, other, NULL);
    cr_assert_eq(r->status, PM__RESPONSE__STATUS__CONFLICT);
    cr_assert(strstr(r->error, "ahead"), "%s", r->error);
    pm__response__free_unpacked(r, NULL);
}

Test(standby, replica_apply_makes_clients_equal_or_changes_nothing)
{
    char *why = NULL;
    const char *dir = s_at("b/clients");
    char d[256];
    snprintf(d, sizeof d, "%s", dir);
    zcert_t *k1 = zcert_new(), *k2 = zcert_new(), *k3 = zcert_new();
    cr_assert_eq(
        pm_keys_enroll(d, "mx1", PM_ROLE_AGENT, zcert_public_txt(k1), &why), 0);
    cr_assert_eq(
        pm_keys_enroll(d, "old", PM_ROLE_AGENT, zcert_public_txt(k2), &why), 0);
    Pm__EnrolledKey a = PM__ENROLLED_KEY__INIT, b = PM__ENROLLED_KEY__INIT;
    a.name = "mx1";
    a.role = PM_ROLE_AGENT;
    a.public_key = (char *)zcert_public_txt(k1);
    b.name = "mx2";
    b.role = PM_ROLE_AGENT;
    b.public_key = (char *)zcert_public_txt(k3);
    Pm__EnrolledKey *keys[] = {&a, &b};
    cr_assert_eq(pm_replica_apply(s_standby, d, NULL, 0, keys, 2, &why), 0,
                 "%s", why ? why : "");
    char p[300];
    snprintf(p, sizeof p, "%s/agent-mx2.cert", d);
    cr_assert_eq(access(p, F_OK), 0, "a new key is enrolled");
    snprintf(p, sizeof p, "%s/agent-old.cert", d);
    cr_assert_neq(access(p, F_OK), 0, "a key the primary lacks is withdrawn");

    /* a bad key from the primary: nothing changes */
    b.role = "root";
    cr_assert_eq(pm_replica_apply(s_standby, d, NULL, 0, keys, 2, &why), -1);
    cr_assert(strstr(why, "role"), "%s", why);
    free(why);
    why = NULL;
    b.role = PM_ROLE_AGENT;
    b.name = "../escape";
    cr_assert_eq(pm_replica_apply(s_standby, d, NULL, 0, keys, 2, &why), -1);
    free(why);
    snprintf(p, sizeof p, "%s/agent-mx2.cert", d);
    cr_assert_eq(access(p, F_OK), 0, "still enrolled");
    zcert_destroy(&k1);
    zcert_destroy(&k2);
    zcert_destroy(&k3);
}

/* The standby's own controller over its store (B), as a peer link's
 * answer finds it; the primary's goes first (one ZAP handler a process). */
static pm_ctld_t *
s_standby_ctld(void)
{
    char clients[256], *why = NULL;
    snprintf(clients, sizeof clients, "%s/b/clients", s_dir);
    cr_assert_eq(pm_store_role_put(s_standby, false, 0), PM_OK);
    pm_ctld_destroy(&s_ctld);
    pm_ctld_t *b = pm_ctld_new(s_standby, "inproc://test-standby-b", s_cert,
                               clients, &why);
    cr_assert_not_null(b, "%s", why ? why : "");
    pm_ctld_peers_t peers = {.peers = "", .follow_ms = 500};
    cr_assert_eq(pm_ctld_set_peers(b, &peers, &why), 0);
    return b;
}

static uint64_t
s_epoch(pm_store_t *store)
{
    bool primary = false;
    uint64_t epoch = 0;
    cr_assert_eq(pm_store_role_get(store, &primary, &epoch), PM_OK);
    return epoch;
}

Test(standby, a_standby_keeps_the_epoch_first_and_keys_before_revisions)
{
    s_commit("one@example.com");
    s_commit("two@example.com");
    cr_assert_eq(pm_store_secret_put(s_primary, "dkim-example", "PEM", 3),
                 PM_OK);
    /* the web console's key, enrolled as the README says */
    char *why = NULL, clients[256], web[300];
    snprintf(clients, sizeof clients, "%s/a/clients", s_dir);
    zcert_t *k = zcert_new();
    cr_assert_eq(
        pm_keys_enroll(clients, "web", PM_ROLE_WEB, zcert_public_txt(k), &why),
        0);
    zcert_destroy(&k);
    cr_assert_eq(pm_store_role_put(s_primary, true, 3), PM_OK);
    pm_ctld_peers_t peers = {.peers = "", .follow_ms = 500};
    cr_assert_eq(pm_ctld_set_peers(s_ctld, &peers, &why), 0);
    Pm__Response *r = s_replicate(0, NULL, NULL);
    pm_ctld_t *b = s_standby_ctld();

    /* a key the standby cannot take: the epoch is kept, no revision */
    cr_assert_eq(r->epoch, 3);
    char *role = r->keys[0]->role;
    r->keys[0]->role = "root";
    uint64_t last = 0, head = 9;
    char *trouble = pm_ctld_follow(b, r, "tcp://a", &last);
    cr_assert_not_null(trouble);
    cr_assert(strstr(trouble, "unknown role 'root'"), "%s", trouble);
    free(trouble);
    cr_assert_eq(s_epoch(s_standby), 3, "a promotion comes out past 3");
    cr_assert_eq(pm_store_head(s_standby, &head), PM_OK);
    cr_assert_eq(head, 0, "no revision without its secrets and keys");

    /* the same answer whole: the web key too */
    r->keys[0]->role = role;
    trouble = pm_ctld_follow(b, r, "tcp://a", &last);
    cr_assert_null(trouble, "%s", trouble);
    cr_assert_eq(last, 2);
    snprintf(web, sizeof web, "%s/b/clients/web-web.cert", s_dir);
    cr_assert_eq(access(web, F_OK), 0, "the web console's key is copied");
    uint8_t *data = NULL;
    size_t len = 0;
    cr_assert_eq(pm_store_secret_get(s_standby, "dkim-example", &data, &len),
                 PM_OK);
    free(data);

    /* a primary older than the one followed is not followed */
    r->epoch = 2;
    trouble = pm_ctld_follow(b, r, "tcp://old", &last);
    cr_assert_not_null(trouble);
    cr_assert(strstr(trouble, "tcp://old is at epoch 2, older than the 3"),
              "%s", trouble);
    free(trouble);
    cr_assert_eq(s_epoch(s_standby), 3);
    pm__response__free_unpacked(r, NULL);
    pm_ctld_destroy(&b);
}

Test(standby, a_key_copied_over_in_place_is_seen)
{
    char *why = NULL, clients[256], cert[300];
    snprintf(clients, sizeof clients, "%s/a/clients", s_dir);
    zcert_t *k1 = zcert_new(), *k2 = zcert_new();
    cr_assert_eq(pm_keys_enroll(clients, "mx1", PM_ROLE_AGENT,
                                zcert_public_txt(k1), &why),
                 0);
    pm_replica_t *rep = NULL;
    cr_assert_eq(pm_replica_refresh(&rep, s_primary, clients, &why), 0);
    char before[65];
    strcpy(before, rep->digest);
    /* `cp new.cert clients/agent-mx1.cert` over the old one: the same
     * file written again, the directory's mtime as it was */
    struct stat dir;
    cr_assert_eq(stat(clients, &dir), 0);
    char other[256];
    snprintf(other, sizeof other, "%s/b/clients", s_dir);
    cr_assert_eq(
        pm_keys_enroll(other, "mx1", PM_ROLE_AGENT, zcert_public_txt(k2), &why),
        0);
    snprintf(cert, sizeof cert, "%s/agent-mx1.cert", other);
    FILE *in = fopen(cert, "r");
    char text[4096];
    size_t n = fread(text, 1, sizeof text, in);
    fclose(in);
    snprintf(cert, sizeof cert, "%s/agent-mx1.cert", clients);
    FILE *out = fopen(cert, "w");
    cr_assert_eq(fwrite(text, 1, n, out), n);
    fclose(out);
    struct timespec times[2] = {dir.st_atim, dir.st_mtim};
    cr_assert_eq(utimensat(AT_FDCWD, clients, times, 0), 0);
    cr_assert_eq(pm_replica_refresh(&rep, s_primary, clients, &why), 0);
    cr_assert_str_neq(rep->digest, before, "the new key is what is sent");
    bool found = false;
    for (size_t i = 0; i < rep->n_keys; i++)
        found |= strcmp(rep->keys[i]->public_key, zcert_public_txt(k2)) == 0;
    cr_assert(found);
    pm_replica_destroy(&rep);
    zcert_destroy(&k1);
    zcert_destroy(&k2);
}

Test(standby, a_standby_refuses_all_but_ping)
{
    s_commit("one@example.com");
    cr_assert_eq(pm_store_role_put(s_primary, false, 4), PM_OK);
    pm_ctld_peers_t peers = {.peers = "", .follow_ms = 500};
    char *why = NULL;
    cr_assert_eq(pm_ctld_set_peers(s_ctld, &peers, &why), 0);
    cr_assert(pm_ctld_is_standby(s_ctld));
    Pm__Request req = PM__REQUEST__INIT;
    req.expect_rev = -1;
    Pm__Request__Op ops[] = {
        PM__REQUEST__OP__SHOW,        PM__REQUEST__OP__HISTORY,
        PM__REQUEST__OP__NODES,       PM__REQUEST__OP__REPLICATE,
        PM__REQUEST__OP__POLICY_TEST, PM__REQUEST__OP__PING};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        req.op = ops[i];
        size_t len = 0;
        uint8_t *buf = pm_ctld_handle(s_ctld, &req, "alice", &len);
        Pm__Response *r = NULL;
        cr_assert_eq(pm_wire_unpack_response(buf, len, &r, NULL), PM_OK);
        free(buf);
        bool ping = ops[i] == PM__REQUEST__OP__PING;
        cr_assert_eq(r->status,
                     ping ? PM__RESPONSE__STATUS__OK
                          : PM__RESPONSE__STATUS__NOT_PRIMARY,
                     "op %d", ops[i]);
        cr_assert(r->standby);
        cr_assert_eq(r->epoch, 4);
        if (ping)
            cr_assert_eq(r->head, 1);
        else
            cr_assert(strstr(r->error, "standby"), "%s", r->error);
        pm__response__free_unpacked(r, NULL);
    }
}
