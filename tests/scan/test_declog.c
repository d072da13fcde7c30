/* test_declog.c - the decision log: what the milter writes, how it is
 * bounded, and what the agent's reader makes of hostile files. */
#include "pm_declog.h"
#include "pm_error.h"
#include "testdir.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_dir[64];

static void
s_setup(void)
{
    strcpy(s_dir, "/tmp/pm_tdeclog_XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
}

static void
s_teardown(void)
{
    testdir_remove(s_dir);
}

TestSuite(declog, .init = s_setup, .fini = s_teardown);

/* ---- helpers ---------------------------------------------------------- */

static const char *s_rcpts2[] = {"alice@node1.test", "bob@node1.test"};

static pm_decision_t
s_dec(int64_t t, const char *qid, const char *msgid, const char *from)
{
    return (pm_decision_t){
        .time = t,
        .queue_id = qid,
        .message_id = msgid,
        .sender = from,
        .rcpts = s_rcpts2,
        .n_rcpts = 2,
        .verdict = "rejected",
        .reply = "554 5.7.1 Message rejected: attachment \"a.exe\"",
        .key = "inbound.blocked_extensions",
        .evidence = "reject: blocked attachment a.exe (extension exe)",
        .revision = 7,
    };
}

/* Records a query passed on, copied, in the order they came. */
typedef struct {
    json_t *recs[4096];
    size_t n;
} s_got_t;

static void
s_take(const json_t *rec, void *arg)
{
    s_got_t *g = arg;
    cr_assert_lt(g->n, 4096);
    g->recs[g->n++] = json_deep_copy(rec);
}

static void
s_got_clear(s_got_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        json_decref(g->recs[i]);
    g->n = 0;
}

static const char *
s_str(const s_got_t *g, size_t i, const char *field)
{
    return json_string_value(json_object_get(g->recs[i], field));
}

/* Runs Q (NULL: everything) on s_dir with MAX_BYTES; asserts PM_OK. */
static size_t
s_query(const pm_declog_query_t *q, size_t max_bytes, s_got_t *g,
        size_t *skipped)
{
    pm_declog_query_t all = {0};
    char *why = NULL;
    int rc = pm_declog_query(s_dir, max_bytes, q ? q : &all, s_take, g, skipped,
                             &why);
    cr_assert_eq(rc, PM_OK, "%s", why ? why : "");
    cr_assert_null(why);
    return g->n;
}

static char *
s_path(const char *name)
{
    static char path[2][128];
    static int i;
    i ^= 1;
    snprintf(path[i], sizeof path[i], "%s/%s", s_dir, name);
    return path[i];
}

static size_t
s_lines(const char *name)
{
    FILE *f = fopen(s_path(name), "r");
    if (!f)
        return 0;
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static off_t
s_size(const char *name)
{
    struct stat st;
    return stat(s_path(name), &st) == 0 ? st.st_size : 0;
}

static void
s_write_file(const char *name, const char *data, size_t len)
{
    FILE *f = fopen(s_path(name), "w");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

static pm_declog_t *
s_open(size_t records, size_t bytes)
{
    char *why = NULL;
    pm_declog_t *log = pm_declog_open(s_dir, records, bytes, &why);
    cr_assert_not_null(log, "%s", why ? why : "");
    return log;
}

/* Appends records qid-FROM..qid-TO, at times FROM..TO. */
static void
s_append_range(pm_declog_t *log, int from, int to)
{
    for (int i = from; i <= to; i++) {
        char qid[32], msgid[64];
        snprintf(qid, sizeof qid, "qid-%d", i);
        snprintf(msgid, sizeof msgid, "<m%d@remote.example>", i);
        pm_decision_t d = s_dec(i, qid, msgid, "sender@remote.example");
        char *why = NULL;
        cr_assert_eq(pm_declog_append(log, &d, &why), PM_OK, "%s",
                     why ? why : "");
    }
}

/* ---- round trip --------------------------------------------------------- */

Test(declog, round_trip_and_filters)
{
    pm_declog_t *log = s_open(100, 1 << 20);
    pm_decision_t d[3] = {
        s_dec(1000, "4AAA", "<one@remote.example>", "Alice@Remote.Example"),
        s_dec(2000, "4BBB", "<two@remote.example>", "bob@remote.example"),
        s_dec(3000, "4CCC", "<three@remote.example>", ""),
    };
    d[2].verdict = "accepted";
    d[2].reply = "";
    d[2].key = "";
    d[2].evidence = "accepted";
    d[2].revision = 0;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pm_declog_append(log, &d[i], NULL), PM_OK);
    struct stat st;
    cr_assert_eq(stat(s_path(PM_DECLOG_FILE), &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0640, "mode %o", st.st_mode & 07777);

    s_got_t g = {0};
    size_t skipped = 99;
    pm_declog_query_t q = {.queue_id = "4BBB"};
    cr_assert_eq(s_query(&q, 1 << 20, &g, &skipped), 1);
    cr_assert_eq(skipped, 0);
    json_t *r = g.recs[0];
    cr_assert_eq(json_integer_value(json_object_get(r, "t")), 2000);
    cr_assert_str_eq(s_str(&g, 0, "qid"), "4BBB");
    cr_assert_str_eq(s_str(&g, 0, "msgid"), "<two@remote.example>");
    cr_assert_str_eq(s_str(&g, 0, "from"), "bob@remote.example");
    json_t *rc = json_object_get(r, "rcpt");
    cr_assert_eq(json_array_size(rc), 2);
    cr_assert_str_eq(json_string_value(json_array_get(rc, 1)),
                     "bob@node1.test");
    cr_assert_str_eq(s_str(&g, 0, "verdict"), "rejected");
    cr_assert_str_eq(s_str(&g, 0, "reply"), d[1].reply);
    cr_assert_str_eq(s_str(&g, 0, "key"), "inbound.blocked_extensions");
    cr_assert_str_eq(s_str(&g, 0, "evidence"), d[1].evidence);
    cr_assert_eq(json_integer_value(json_object_get(r, "rev")), 7);
    s_got_clear(&g);

    q = (pm_declog_query_t){.message_id = "<three@remote.example>"};
    cr_assert_eq(s_query(&q, 1 << 20, &g, NULL), 1);
    cr_assert_str_eq(s_str(&g, 0, "qid"), "4CCC");
    cr_assert_str_eq(s_str(&g, 0, "from"), "");
    s_got_clear(&g);
    q = (pm_declog_query_t){.message_id = "<THREE@remote.example>"};
    cr_assert_eq(s_query(&q, 1 << 20, &g, NULL), 0, "Message-ID is exact");
    q = (pm_declog_query_t){.queue_id = "4bbb"};
    cr_assert_eq(s_query(&q, 1 << 20, &g, NULL), 0, "queue id is exact");

    q = (pm_declog_query_t){.sender = "ALICE@remote.EXAMPLE"};
    cr_assert_eq(s_query(&q, 1 << 20, &g, NULL), 1, "sender: any case");
    cr_assert_str_eq(s_str(&g, 0, "qid"), "4AAA");
    s_got_clear(&g);
    q = (pm_declog_query_t){.sender = "alice@remote.example",
                            .queue_id = "4BBB"};
    cr_assert_eq(s_query(&q, 1 << 20, &g, NULL), 0, "every field must match");

    q = (pm_declog_query_t){.since = 2000};
    cr_assert_eq(s_query(&q, 1 << 20, &g, NULL), 2);
    cr_assert_str_eq(s_str(&g, 0, "qid"), "4CCC", "newest first");
    cr_assert_str_eq(s_str(&g, 1, "qid"), "4BBB");
    s_got_clear(&g);

    q = (pm_declog_query_t){.max = 2};
    cr_assert_eq(s_query(&q, 1 << 20, &g, NULL), 2);
    cr_assert_str_eq(s_str(&g, 0, "qid"), "4CCC");
    cr_assert_str_eq(s_str(&g, 1, "qid"), "4BBB");
    s_got_clear(&g);
    cr_assert_eq(s_query(NULL, 1 << 20, &g, NULL), 3, "max 0: all");
    cr_assert_str_eq(s_str(&g, 2, "qid"), "4AAA");
    s_got_clear(&g);
    pm_declog_close(&log);
    cr_assert_null(log);
    pm_declog_close(&log); /* safe twice */
}

Test(declog, missing_files_are_no_error)
{
    s_got_t g = {0};
    size_t skipped = 99;
    cr_assert_eq(s_query(NULL, 1 << 20, &g, &skipped), 0);
    cr_assert_eq(skipped, 0);
}

Test(declog, open_refuses_what_cannot_hold_records)
{
    char *why = NULL;
    cr_assert_null(pm_declog_open(s_dir, 0, 1 << 20, &why));
    cr_assert_not_null(why);
    free(why);
    why = NULL;
    cr_assert_null(pm_declog_open("/nonexistent/dir", 10, 1 << 20, &why));
    cr_assert_not_null(strstr(why, "/nonexistent/dir/" PM_DECLOG_FILE), "%s",
                       why);
    free(why);
}

/* ---- retention -------------------------------------------------------- */

Test(declog, rotation_keeps_at_most_max_records)
{
    pm_declog_t *log = s_open(10, 1 << 20);
    s_append_range(log, 1, 25);
    cr_assert_eq(s_lines(PM_DECLOG_OLD), 5);
    cr_assert_leq(s_lines(PM_DECLOG_FILE), 5);
    cr_assert_eq(s_lines(PM_DECLOG_OLD) + s_lines(PM_DECLOG_FILE), 10);
    s_got_t g = {0};
    cr_assert_eq(s_query(NULL, 1 << 20, &g, NULL), 10);
    for (size_t i = 0; i < 10; i++) {
        char qid[32];
        snprintf(qid, sizeof qid, "qid-%zu", 25 - i);
        cr_assert_str_eq(s_str(&g, i, "qid"), qid, "record %zu", i);
    }
    s_got_clear(&g);
    pm_declog_close(&log);
}

/* Records at times 1..25 with 10 s kept: the current file is replaced
 * once its first record is 5 s old, so nothing older than about 10 s
 * stays, even far below the count and size limits; a restart reads the
 * first record's time back. */
Test(declog, rotation_by_age)
{
    pm_declog_t *log = s_open(100000, 1 << 20);
    pm_declog_set_max_age(log, 10);
    s_append_range(log, 1, 22);
    pm_declog_close(&log);
    log = s_open(100000, 1 << 20);
    pm_declog_set_max_age(log, 10);
    s_append_range(log, 23, 25);
    s_got_t g = {0};
    size_t n = s_query(NULL, 1 << 20, &g, NULL);
    cr_assert_str_eq(s_str(&g, 0, "qid"), "qid-25");
    cr_assert_str_eq(s_str(&g, n - 1, "qid"), "qid-16",
                     "the oldest kept is 10 s before the newest");
    cr_assert_eq(n, 10);
    s_got_clear(&g);
    pm_declog_close(&log);
}

Test(declog, rotation_by_bytes)
{
    size_t max = 8192;
    pm_declog_t *log = s_open(100000, max);
    s_append_range(log, 1, 200);
    cr_assert_leq(s_size(PM_DECLOG_FILE), (off_t)max / 2);
    cr_assert_leq(s_size(PM_DECLOG_OLD), (off_t)max / 2);
    cr_assert_gt(s_size(PM_DECLOG_OLD), (off_t)max / 4);
    s_got_t g = {0};
    size_t n = s_query(NULL, max, &g, NULL);
    cr_assert_gt(n, 10);
    cr_assert_str_eq(s_str(&g, 0, "qid"), "qid-200");
    s_got_clear(&g);
    pm_declog_close(&log);
}

Test(declog, restart_continues_counting)
{
    pm_declog_t *log = s_open(10, 1 << 20);
    s_append_range(log, 1, 8); /* previous: 1-5, current: 6-8 */
    pm_declog_close(&log);
    cr_assert_eq(s_lines(PM_DECLOG_FILE), 3);
    log = s_open(10, 1 << 20);
    s_append_range(log, 9, 11); /* current full at 10; 11 rotates */
    cr_assert_eq(s_lines(PM_DECLOG_OLD), 5, "6-10");
    cr_assert_eq(s_lines(PM_DECLOG_FILE), 1, "11");
    pm_declog_close(&log);
    log = s_open(10, 1 << 20);
    s_append_range(log, 12, 30);
    cr_assert_leq(s_lines(PM_DECLOG_OLD) + s_lines(PM_DECLOG_FILE), 10);
    s_got_t g = {0};
    cr_assert_eq(s_query(NULL, 1 << 20, &g, NULL), 10);
    cr_assert_str_eq(s_str(&g, 0, "qid"), "qid-30");
    cr_assert_str_eq(s_str(&g, 9, "qid"), "qid-21");
    s_got_clear(&g);
    pm_declog_close(&log);
}

/* A file that ends inside a line (a write cut short by a full disk, or a
 * crash): the next record starts on a line of its own. */
Test(declog, torn_last_line_is_closed_before_the_next_record)
{
    s_write_file(PM_DECLOG_FILE, "{\"t\":1,\"qid\":\"to", 16);
    pm_declog_t *log = s_open(100, 1 << 20);
    s_append_range(log, 1, 2);
    pm_declog_close(&log);
    s_got_t g = {0};
    size_t skipped = 0;
    cr_assert_eq(s_query(NULL, 1 << 20, &g, &skipped), 2);
    cr_assert_eq(skipped, 1, "the torn line");
    s_got_clear(&g);
}

/* The current file removed under the writer: the rotation that finds it
 * gone fails once, and the next record goes to a new file. */
Test(declog, removed_file_is_made_anew)
{
    pm_declog_t *log = s_open(4, 1 << 20);
    s_append_range(log, 1, 2);
    cr_assert_eq(unlink(s_path(PM_DECLOG_FILE)), 0);
    pm_decision_t d = s_dec(3, "qid-3", "", "");
    char *why = NULL;
    cr_assert_eq(pm_declog_append(log, &d, &why), PM_EIO);
    cr_assert_not_null(strstr(why, PM_DECLOG_FILE), "%s", why);
    free(why);
    s_append_range(log, 4, 4);
    pm_declog_close(&log);
    s_got_t g = {0};
    cr_assert_eq(s_query(NULL, 1 << 20, &g, NULL), 1);
    cr_assert_str_eq(s_str(&g, 0, "qid"), "qid-4");
    s_got_clear(&g);
}

/* ---- caps ------------------------------------------------------------ */

Test(declog, fields_and_recipients_are_capped)
{
    char *big = malloc(2001);
    memset(big, 'a', 2000);
    big[2000] = '\0';
    const char **many = calloc(500, sizeof *many);
    for (size_t i = 0; i < 500; i++)
        many[i] = "someone@node1.test";
    /* a two-byte character across the cap is left out whole */
    char cut[PM_DECLOG_FIELD_MAX + 8];
    memset(cut, 'b', PM_DECLOG_FIELD_MAX - 1);
    strcpy(cut + PM_DECLOG_FIELD_MAX - 1, "\xc3\xa9zz");
    pm_decision_t d = s_dec(5, "4CAP", cut, big);
    d.rcpts = many;
    d.n_rcpts = 500;
    d.evidence =
        "bad \xff\xfe utf-8 \xc3 and \x1b[31m and \xed\xa0\x80 ok \xc3\xa9";
    pm_declog_t *log = s_open(100, 1 << 20);
    cr_assert_eq(pm_declog_append(log, &d, NULL), PM_OK);
    pm_declog_close(&log);

    s_got_t g = {0};
    size_t skipped = 9;
    cr_assert_eq(s_query(NULL, 1 << 20, &g, &skipped), 1);
    cr_assert_eq(skipped, 0);
    cr_assert_eq(strlen(s_str(&g, 0, "from")), PM_DECLOG_FIELD_MAX);
    cr_assert_eq(strlen(s_str(&g, 0, "msgid")), PM_DECLOG_FIELD_MAX - 1);
    cr_assert_eq(json_array_size(json_object_get(g.recs[0], "rcpt")),
                 PM_DECLOG_RCPTS_MAX);
    cr_assert_str_eq(s_str(&g, 0, "evidence"),
                     "bad ?? utf-8 ? and ?[31m and ??? ok \xc3\xa9");
    s_got_clear(&g);
    free(big);
    free(many);
}

/* Recipients that would take the record past PM_DECLOG_RECORD_MAX once
 * escaped are left out; the record stays readable. */
Test(declog, record_never_exceeds_its_cap)
{
    char quotes[PM_DECLOG_FIELD_MAX + 1];
    memset(quotes, '"', PM_DECLOG_FIELD_MAX);
    quotes[PM_DECLOG_FIELD_MAX] = '\0';
    const char *many[PM_DECLOG_RCPTS_MAX];
    for (size_t i = 0; i < PM_DECLOG_RCPTS_MAX; i++)
        many[i] = quotes;
    pm_decision_t d = s_dec(5, quotes, quotes, quotes);
    d.rcpts = many;
    d.n_rcpts = PM_DECLOG_RCPTS_MAX;
    d.evidence = d.reply = d.key = quotes;
    pm_declog_t *log = s_open(100, 1 << 20);
    cr_assert_eq(pm_declog_append(log, &d, NULL), PM_OK);
    pm_declog_close(&log);
    cr_assert_leq(s_size(PM_DECLOG_FILE), PM_DECLOG_RECORD_MAX);
    s_got_t g = {0};
    size_t skipped = 9;
    cr_assert_eq(s_query(NULL, 1 << 20, &g, &skipped), 1);
    cr_assert_eq(skipped, 0);
    size_t n = json_array_size(json_object_get(g.recs[0], "rcpt"));
    cr_assert(n > 10 && n < PM_DECLOG_RCPTS_MAX, "%zu recipients", n);
    s_got_clear(&g);
}

/* ---- hostile files ------------------------------------------------------- */

/* A record line as the milter writes it, with VERDICT, REV and EXTRA
 * (more members, or ""). */
static char *
s_rec_as(const char *qid, const char *verdict, int rev, const char *extra)
{
    static char buf[4][1024];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i],
             "{\"t\":10,\"qid\":\"%s\",\"msgid\":\"\",\"from\":\"a@b\","
             "\"rcpt\":[\"c@d\"],\"verdict\":\"%s\",\"reply\":\"\","
             "\"key\":\"\",\"evidence\":\"accepted\",\"rev\":%d%s}\n",
             qid, verdict, rev, extra);
    return buf[i];
}

static char *
s_rec(const char *qid, const char *extra)
{
    return s_rec_as(qid, "accepted", 3, extra);
}

Test(declog, malformed_lines_skipped_and_counted)
{
    size_t cap = 300000;
    char *data = malloc(cap), *p = data;
    p += sprintf(p, "%s", s_rec("old-ok", ""));
    p += sprintf(p, "this is not JSON\n");
    p += sprintf(p, "{\"t\":10,\"qid\":5,\"msgid\":\"\",\"from\":\"a@b\","
                    "\"rcpt\":[],\"verdict\":\"accepted\",\"reply\":\"\","
                    "\"key\":\"\",\"evidence\":\"\",\"rev\":3}\n");
    p += sprintf(p, "%s", s_rec_as("bad-verdict", "maybe", 3, ""));
    p += sprintf(p, "[1,2,3]\n\n");
    p += sprintf(p, "%s", s_rec_as("negative-rev", "accepted", -1, ""));
    p += sprintf(p, "%s", s_rec("dup-key", ",\"qid\":\"x\""));
    s_write_file(PM_DECLOG_OLD, data, (size_t)(p - data));

    p = data;
    p += sprintf(p, "%s", s_rec("cur-ok-1", ""));
    /* a 100 KiB line: a valid JSON object, but over the record cap */
    p += sprintf(p, "{\"t\":10,\"qid\":\"");
    memset(p, 'x', 100 << 10);
    p += 100 << 10;
    p += sprintf(p, "\"}\n");
    /* a field over its cap, and too many recipients */
    char longer[PM_DECLOG_FIELD_MAX + 2];
    memset(longer, 'y', PM_DECLOG_FIELD_MAX + 1);
    longer[PM_DECLOG_FIELD_MAX + 1] = '\0';
    p += sprintf(p, "%s", s_rec(longer, ""));
    p += sprintf(p, "{\"t\":10,\"qid\":\"q\",\"msgid\":\"\",\"from\":\"\","
                    "\"rcpt\":[");
    for (int i = 0; i <= PM_DECLOG_RCPTS_MAX; i++)
        p += sprintf(p, "%s\"r\"", i ? "," : "");
    p += sprintf(p, "],\"verdict\":\"accepted\",\"reply\":\"\",\"key\":\"\","
                    "\"evidence\":\"\",\"rev\":3}\n");
    p += sprintf(p, "%s", s_rec("cur-ok-2", ",\"unknown\":\"dropped\""));
    p += sprintf(p, "{\"t\":10,\"qid\":\"torn");
    s_write_file(PM_DECLOG_FILE, data, (size_t)(p - data));

    s_got_t g = {0};
    size_t skipped = 0;
    cr_assert_eq(s_query(NULL, 1 << 20, &g, &skipped), 3);
    cr_assert_str_eq(s_str(&g, 0, "qid"), "cur-ok-2");
    cr_assert_null(json_object_get(g.recs[0], "unknown"),
                   "only the record's fields are passed on");
    cr_assert_str_eq(s_str(&g, 1, "qid"), "cur-ok-1");
    cr_assert_str_eq(s_str(&g, 2, "qid"), "old-ok");
    /* old: not JSON, number for a string, bad verdict, array, empty line,
     * negative revision, duplicate key; current: 100 KiB line, field over
     * its cap, too many recipients, torn last line */
    cr_assert_eq(skipped, 11, "%zu skipped", skipped);
    s_got_clear(&g);
    free(data);
}

/* The writer turns every C0 control and DEL into '?': a record holding
 * one (a newline, ESC, a NUL, DEL; in any text, a recipient too) was
 * written by someone else, to forge lines where it is shown, and is
 * skipped. Other characters (C1 controls among them) are the display's to
 * escape. */
Test(declog, control_characters_mark_a_forged_record)
{
    char *data = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&data, &len);
    fputs(s_rec("ok-1", ""), f);
    fputs(s_rec("nl\\nforged", ""), f);
    fputs(s_rec("esc\\u001b[2J", ""), f);
    fputs(s_rec("nul\\u0000cut", ""), f);
    fputs(s_rec("del\\u007f", ""), f);
    fputs("{\"t\":10,\"qid\":\"tab\",\"msgid\":\"\",\"from\":\"a@b\","
          "\"rcpt\":[\"c@d\"],\"verdict\":\"accepted\",\"reply\":\"\","
          "\"key\":\"\",\"evidence\":\"a\\tb\",\"rev\":3}\n",
          f);
    fputs("{\"t\":10,\"qid\":\"rcpt\",\"msgid\":\"\",\"from\":\"a@b\","
          "\"rcpt\":[\"x@y\\r\"],\"verdict\":\"accepted\",\"reply\":\"\","
          "\"key\":\"\",\"evidence\":\"\",\"rev\":3}\n",
          f);
    fputs(s_rec("ok-2-\\u0085", ""), f); /* U+0085, a C1 control: kept */
    fclose(f);
    s_write_file(PM_DECLOG_FILE, data, len);
    s_got_t g = {0};
    size_t skipped = 0;
    cr_assert_eq(s_query(NULL, 1 << 20, &g, &skipped), 2);
    cr_expect_str_eq(s_str(&g, 0, "qid"), "ok-2-\xc2\x85");
    cr_expect_str_eq(s_str(&g, 1, "qid"), "ok-1");
    cr_expect_eq(skipped, 6, "%zu skipped", skipped);
    s_got_clear(&g);
    free(data);
}

/* The keys the filter decides by, and no other: a filter record naming
 * one of Postfix's keys is not the filter's (test_milter holds this list
 * to pm_milter_decision_key's). */
Test(declog, filter_keys)
{
    cr_expect(pm_declog_filter_key(""));
    cr_expect(pm_declog_filter_key("inbound.blocked_extensions"));
    cr_expect(pm_declog_filter_key("antispam.kill_percent"));
    cr_expect_not(pm_declog_filter_key("outbound.mynetworks"));
    cr_expect_not(pm_declog_filter_key("inbound.checks.helo"));
    cr_expect_not(pm_declog_filter_key("dkim.domains "));
    cr_expect_not(pm_declog_filter_key(NULL));
}

/* A rotation between the reader's two reads: what was current is now the
 * previous file; its records are passed once. */
Test(declog, rotation_between_reads_passes_records_once)
{
    char both[2048];
    const char *r1 = s_rec("r1", "");
    snprintf(both, sizeof both, "%s%s", r1, s_rec("r2", ""));
    s_write_file(PM_DECLOG_FILE, both, strlen(r1));
    s_write_file(PM_DECLOG_OLD, both, strlen(both));
    s_got_t g = {0};
    cr_assert_eq(s_query(NULL, 1 << 20, &g, NULL), 2);
    cr_assert_str_eq(s_str(&g, 0, "qid"), "r2");
    cr_assert_str_eq(s_str(&g, 1, "qid"), "r1");
    s_got_clear(&g);
}

static void
s_query_fails(const char *name, int want)
{
    s_got_t g = {0};
    char *why = NULL;
    pm_declog_query_t q = {0};
    int rc = pm_declog_query(s_dir, 1 << 20, &q, s_take, &g, NULL, &why);
    cr_assert_eq(rc, want, "rc %d", rc);
    cr_assert_not_null(why);
    cr_assert_not_null(strstr(why, name), "%s", why);
    cr_assert_eq(g.n, 0);
    free(why);
}

Test(declog, symlink_is_refused)
{
    const char *secret = s_rec("secret", "");
    s_write_file("elsewhere", secret, strlen(secret));
    cr_assert_eq(symlink(s_path("elsewhere"), s_path(PM_DECLOG_FILE)), 0);
    s_query_fails(PM_DECLOG_FILE, PM_EINVAL);
    unlink(s_path(PM_DECLOG_FILE));
    cr_assert_eq(symlink(s_path("elsewhere"), s_path(PM_DECLOG_OLD)), 0);
    s_query_fails(PM_DECLOG_OLD, PM_EINVAL);
    /* and the writer does not follow one either */
    char *why = NULL;
    unlink(s_path(PM_DECLOG_OLD));
    cr_assert_eq(symlink(s_path("elsewhere"), s_path(PM_DECLOG_FILE)), 0);
    cr_assert_null(pm_declog_open(s_dir, 10, 1 << 20, &why));
    cr_assert_not_null(strstr(why, "link"), "%s", why);
    free(why);
}

Test(declog, hard_link_is_refused)
{
    const char *secret = s_rec("secret", "");
    s_write_file("elsewhere", secret, strlen(secret));
    cr_assert_eq(link(s_path("elsewhere"), s_path(PM_DECLOG_FILE)), 0);
    s_query_fails(PM_DECLOG_FILE, PM_EINVAL);
}

Test(declog, fifo_is_refused_without_hanging)
{
    cr_assert_eq(mkfifo(s_path(PM_DECLOG_FILE), 0600), 0);
    s_query_fails(PM_DECLOG_FILE, PM_EINVAL);
    char *why = NULL;
    cr_assert_null(pm_declog_open(s_dir, 10, 1 << 20, &why));
    cr_assert_not_null(why);
    free(why);
}

Test(declog, too_big_file_is_refused)
{
    size_t max = 8192; /* each file may hold 4 KiB + one record */
    size_t len = max / 2 + PM_DECLOG_RECORD_MAX + 1;
    char *data = malloc(len);
    memset(data, '\n', len);
    s_write_file(PM_DECLOG_OLD, data, len);
    free(data);
    s_got_t g = {0};
    char *why = NULL;
    pm_declog_query_t q = {0};
    cr_assert_eq(pm_declog_query(s_dir, max, &q, s_take, &g, NULL, &why),
                 PM_EINVAL);
    cr_assert_not_null(strstr(why, PM_DECLOG_OLD), "%s", why);
    free(why);
}

/* ---- threads --------------------------------------------------------------
 */

static void *
s_writer(void *arg)
{
    pm_declog_t *log = arg;
    for (int i = 0; i < 200; i++) {
        pm_decision_t d = s_dec(i, "4THR", "", "t@remote.example");
        if (pm_declog_append(log, &d, NULL) != PM_OK)
            return (void *)1;
    }
    return NULL;
}

Test(declog, concurrent_appends_stay_whole_lines)
{
    pm_declog_t *log = s_open(100000, 64 << 20);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, s_writer, log), 0);
    for (int i = 0; i < 4; i++) {
        void *rc = NULL;
        pthread_join(t[i], &rc);
        cr_assert_null(rc);
    }
    pm_declog_close(&log);
    s_got_t g = {0};
    size_t skipped = 9;
    cr_assert_eq(s_query(NULL, 64 << 20, &g, &skipped), 800);
    cr_assert_eq(skipped, 0);
    s_got_clear(&g);
}
