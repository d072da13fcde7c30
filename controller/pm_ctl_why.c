/* pm_ctl_why.c - privmta-ctl why: what every node's filter decided about
 * a message (by queue id or Message-ID) or a sender, and the policy key
 * that decided it, asked of every node at once through the controller.
 *
 * Exit 0 when some node had a record, 1 when none had (so a script can
 * tell), 3/4 when the controller could not be asked. Nodes that gave no
 * answer are named on stderr (and in "missing" with --json): a record may
 * be on one of them. */
#include "pm_check.h"
#include "pm_ctl.h"
#include "pm_ctl_show.h"
#include "pm_mem.h"
#include "pm_text.h"
#include "pm_wire.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *from;
    const char *since;
    unsigned max;
    bool json;
} s_opts_t;

static int
s_options(int argc, char **argv, s_opts_t *o)
{
    static const struct option longs[] = {
        {"from", required_argument, NULL, 'f'},
        {"since", required_argument, NULL, 's'},
        {"max", required_argument, NULL, 'm'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->max = 20;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        char *end = NULL;
        if (c == 'f') {
            o->from = optarg;
        } else if (c == 's') {
            o->since = optarg;
        } else if (c == 'j') {
            o->json = true;
        } else if (c == 'm') {
            o->max = (unsigned)strtoul(optarg, &end, 10);
            if (*end || o->max < 1 || o->max > PM_WIRE_WHY_MAX)
                return -1;
        } else {
            return -1;
        }
    }
    /* one thing to look for: an id, or --from */
    return (optind == argc - 1) != (o->from != NULL) ? optind : -1;
}

static json_t *
s_record_json(const Pm__WhyRecord *r)
{
    json_t *rcpts = json_array();
    for (size_t i = 0; i < r->n_rcpts; i++)
        json_array_append_new(rcpts, json_string(r->rcpts[i]));
    return json_pack("{s:s, s:I, s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:s, s:I}",
                     "node", r->node, "time", (json_int_t)r->time, "queue_id",
                     r->queue_id, "message_id", r->message_id, "from",
                     r->sender, "rcpts", rcpts, "verdict", r->verdict, "reply",
                     r->reply, "key", r->key, "evidence", r->evidence,
                     "revision", (json_int_t)r->revision);
}

/* One record for a person: what, where, when, then why. Text from nodes
 * is escaped (pm_ctl_cell). */
static void
s_record_text(const Pm__WhyRecord *r)
{
    char when[32];
    pm_ctl_utc(r->time, when, sizeof when);
    printf("%s  ", when);
    pm_ctl_cell(r->node, 0, PM_CTL_CELL_MAX, "  ");
    pm_ctl_cell(r->queue_id, 0, PM_CTL_CELL_MAX, "  ");
    pm_ctl_cell(r->verdict, 0, PM_CTL_CELL_MAX, "\n");
    printf("  from ");
    pm_ctl_cell(*r->sender ? r->sender : "<>", 0, PM_CTL_LINE_MAX, " to ");
    for (size_t i = 0; i < r->n_rcpts; i++)
        pm_ctl_cell(r->rcpts[i], 0, PM_CTL_LINE_MAX,
                    i + 1 < r->n_rcpts ? ", " : "");
    printf("\n  message-id ");
    pm_ctl_cell(r->message_id, 0, PM_CTL_LINE_MAX, "\n");
    if (*r->reply) {
        printf("  answer ");
        pm_ctl_cell(r->reply, 0, PM_CTL_LINE_MAX, "\n");
    }
    printf("  decided by ");
    pm_ctl_cell(*r->key ? r->key : "(no key: accepted, or a failure)", 0,
                PM_CTL_LINE_MAX, "");
    printf(" (revision %llu)\n  because ", (unsigned long long)r->revision);
    pm_ctl_cell(r->evidence, 0, PM_CTL_LINE_MAX, "\n");
}

int
pm_ctl_why(pm_ctl_t *ctl, int argc, char **argv)
{
    s_opts_t o;
    int at = s_options(argc, argv, &o);
    uint32_t since = 0;
    char *bad = o.since && at >= 0 ? pm_duration_parse(o.since, &since) : NULL;
    if (at < 0 || bad) {
        fprintf(stderr,
                "%s%susage: privmta-ctl why QUEUE-ID | MESSAGE-ID | "
                "--from ADDRESS [--since DURATION] [--max N] "
                "[--json]\n",
                bad ? bad : "", bad ? "\n" : "");
        free(bad);
        return PM_EXIT_USAGE;
    }
    Pm__WhyQuery q = PM__WHY_QUERY__INIT;
    char *msgid = NULL;
    if (o.from) {
        q.sender = (char *)o.from;
    } else if (strchr(argv[at], '@')) {
        /* a Message-ID, as the header holds it: with its angle brackets */
        msgid = argv[at][0] == '<' ? pm_strdup(argv[at])
                                   : pm_asprintf("<%s>", argv[at]);
        q.message_id = msgid;
    } else {
        q.queue_id = argv[at];
    }
    q.since = o.since ? (int64_t)time(NULL) - since : 0;
    q.max = o.max;
    Pm__Request req = PM__REQUEST__INIT;
    req.op = PM__REQUEST__OP__WHY;
    req.why = &q;
    req.expect_rev = -1;
    Pm__Response *r = NULL;
    int rc = pm_ctl_call(ctl, &req, &r);
    free(msgid);
    if (rc != PM_EXIT_OK)
        return rc;
    if (o.json) {
        json_t *records = json_array(), *missing = json_array();
        for (size_t i = 0; i < r->n_why; i++)
            json_array_append_new(records, s_record_json(r->why[i]));
        for (size_t i = 0; i < r->n_why_missing; i++)
            json_array_append_new(missing, json_string(r->why_missing[i]));
        pm_ctl_print_json(
            json_pack("{s:o, s:o}", "records", records, "missing", missing));
    } else {
        for (size_t i = 0; i < r->n_why; i++)
            s_record_text(r->why[i]);
        if (r->n_why == 0)
            printf("no node has a record of it\n");
    }
    fflush(stdout);
    for (size_t i = 0; i < r->n_why_missing && !o.json; i++) {
        /* "NODE: why": an agent's words, escaped */
        char *text = pm_text_escape(r->why_missing[i], PM_CTL_LINE_MAX);
        fprintf(stderr, "privmta-ctl why: nothing from %s\n", text);
        free(text);
    }
    rc = r->n_why ? PM_EXIT_OK : PM_EXIT_REJECTED;
    pm__response__free_unpacked(r, NULL);
    return rc;
}
