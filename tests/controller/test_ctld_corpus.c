/* test_ctld_corpus.c - the controller's own validation, on the whole
 * invalid corpus. privmta-ctl validates before it sends, so an end-to-end
 * push of tests/policy/invalid never reaches the controller's checks; here
 * every file that can be represented as a policy at all (the mistake is in
 * a value or between keys, not in the file's types) is built without the
 * client's checks and pushed straight to pm_ctld_handle over a real store:
 * each must be refused as INVALID, naming the file's expected key, and
 * nothing may be stored. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pm_ctld.h"
#include "pm_diag.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"
#include "pm_policy_private.h"
#include "pm_store.h"
#include "pm_value.h"
#include "pm_wire.h"
#include "testdir.h"

#define INVALID_DIR PM_SOURCE_DIR "/tests/policy/invalid"

/* FILE built without validation, or NULL when it cannot be represented.
 * *EXPECT gets the key its first line names ("# expect: KEY"). */
static Pm__Policy *
s_raw_policy(const char *name, char **expect)
{
    char *path = pm_asprintf("%s/%s", INVALID_DIR, name), *text = NULL;
    size_t len = 0;
    cr_assert_eq(pm_file_read(path, 1u << 20, 0, &text, &len, NULL), PM_OK);
    *expect = NULL;
    if (strncmp(text, "# expect: ", 10) == 0)
        *expect = pm_strndup(text + 10, strcspn(text + 10, "\n"));
    pm_diag_t *diag = pm_diag_new(name);
    pm_value_t *doc = pm_value_parse(text, len, 1, diag);
    Pm__Policy *p =
        doc ? pm_policy_from_value_unchecked(doc, INVALID_DIR, diag) : NULL;
    pm_value_destroy(&doc);
    pm_diag_destroy(&diag);
    free(text);
    free(path);
    return p;
}

static Pm__Response *
s_push(pm_ctld_t *ctld, Pm__Policy *policy)
{
    Pm__Request req = PM__REQUEST__INIT;
    req.op = PM__REQUEST__OP__PUSH;
    req.expect_rev = -1;
    req.policy = policy;
    size_t len = 0;
    uint8_t *buf = pm_ctld_handle(ctld, &req, "corpus", &len);
    Pm__Response *resp = NULL;
    cr_assert_eq(pm_wire_unpack_response(buf, len, &resp, NULL), PM_OK);
    free(buf);
    return resp;
}

Test(ctld_corpus, controller_refuses_every_representable_invalid_policy)
{
    char dir[] = "/tmp/pm_ctld_corpus.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    pm_store_t *store = NULL;
    cr_assert_eq(pm_store_open(dir, 0, 0, &store), PM_OK);
    pm_ctld_t *ctld = pm_ctld_new(store, NULL, NULL, NULL, NULL);
    DIR *d = opendir(INVALID_DIR);
    cr_assert_not_null(d);
    size_t sent = 0, files = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strstr(e->d_name, ".yaml") && !strstr(e->d_name, ".json"))
            continue;
        files++;
        char *expect = NULL;
        Pm__Policy *p = s_raw_policy(e->d_name, &expect);
        if (p) {
            sent++;
            Pm__Response *r = s_push(ctld, p);
            cr_expect_eq(r->status, PM__RESPONSE__STATUS__INVALID,
                         "%s: the controller accepted it", e->d_name);
            bool named = !expect || strcmp(expect, "-") == 0;
            for (size_t i = 0; !named && i < r->n_problems; i++)
                named = strstr(r->problems[i], expect) != NULL;
            cr_expect(named, "%s: the refusal does not name %s (%zu problems)",
                      e->d_name, expect, r->n_problems);
            pm__response__free_unpacked(r, NULL);
            pm_policy_free(&p);
        }
        free(expect);
    }
    closedir(d);
    uint64_t head = 99;
    cr_assert_eq(pm_store_head(store, &head), PM_OK);
    cr_expect_eq(head, 0, "nothing may be stored");
    /* most mistakes are in values: if few got through to the controller,
     * this test would prove little */
    cr_expect_geq(sent, files / 2,
                  "only %zu of %zu files reached the "
                  "controller",
                  sent, files);
    printf("%zu of %zu invalid files sent raw to the controller\n", sent,
           files);
    pm_ctld_destroy(&ctld);
    pm_store_close(&store);
    testdir_remove(dir);
}
