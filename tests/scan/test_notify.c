/* test_notify.c - pm_notify: rendering, Message-IDs, the addresses a
 * notice may go to (envelope addresses of hostile mail), and the listener
 * it is sent to (the agent's, when it names one). */
#include "testnet.h"
#include "pm_notify.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_handoff.h"
#include "pm_mem.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char *s_rcpts[] = {"alice@node1.test", "bob@node1.test"};
static const pm_notice_t s_notice = {
    "virus", "Eicar", "s@remote.example", s_rcpts, 2, "4ABCDEF", "hi", 0};

static char *
s_header(const char *text, const char *name)
{
    const char *h = strstr(text, name);
    cr_assert_not_null(h, "%s in %s", name, text);
    const char *e = strstr(h, "\r\n");
    return strndup(h, (size_t)(e - h));
}

Test(notify, message_ids_are_unique_per_notice)
{
    char *a =
        pm_notify_render(&s_notice, "pm@node1.test", "alice@node1.test", false);
    char *b =
        pm_notify_render(&s_notice, "pm@node1.test", "alice@node1.test", false);
    char *c =
        pm_notify_render(&s_notice, "pm@node1.test", "admin@node1.test", true);
    char *ia = s_header(a, "Message-ID: "), *ib = s_header(b, "Message-ID: ");
    char *ic = s_header(c, "Message-ID: ");
    cr_assert_str_neq(ia, ib, "same notice twice: two ids");
    cr_assert_str_neq(ia, ic);
    cr_assert_not_null(strstr(ia, "4ABCDEF"), "%s", ia);
    cr_assert_eq(ia[strlen(ia) - 1], '>');
    free(ia);
    free(ib);
    free(ic);
    free(a);
    free(b);
    free(c);
}

Test(notify, usable_addresses)
{
    char *hdr = NULL;
    char *rcpt = pm_notify_address("alice@node1.test", &hdr);
    cr_assert_str_eq(rcpt, "alice@node1.test");
    cr_assert_str_eq(hdr, "alice@node1.test");
    free(rcpt);
    free(hdr);
    rcpt = pm_notify_address("first.last+tag@sub.node1.test", NULL);
    cr_assert_str_eq(rcpt, "first.last+tag@sub.node1.test");
    free(rcpt);
    char *t =
        pm_notify_render(&s_notice, "pm@node1.test", "alice@node1.test", false);
    cr_assert_not_null(strstr(t, "\r\nTo: alice@node1.test\r\n"));
    free(t);
}

Test(notify, unusable_addresses_are_refused)
{
    const char *bad[] = {"",
                         "nobody",
                         "a@",
                         "@node1.test",
                         "<alice@node1.test>",
                         "alice@node1.test\r\nBcc: x@evil.test",
                         "alice@node1.test\nRCPT TO:<x@evil.test>",
                         "alice@node1.test, bob@node1.test",
                         "Alice <alice@node1.test>",
                         "a\tb@node1.test",
                         "grp: a@node1.test;"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *hdr = NULL;
        cr_assert_null(pm_notify_address(bad[i], &hdr), "'%s'", bad[i]);
        cr_assert_null(hdr);
        cr_assert_null(
            pm_notify_render(&s_notice, "pm@node1.test", bad[i], false),
            "'%s' rendered", bad[i]);
    }
    cr_assert_null(pm_notify_address(NULL, NULL));
    /* the notifier refuses to queue them (nothing listens: none is sent) */
    char *why = NULL;
    pm_notify_t *nt =
        pm_notify_new("127.0.0.1:1", NULL, "pm@node1.test", 100, &why);
    cr_assert_not_null(nt, "%s", why ? why : "");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(pm_notify_post(nt, &s_notice, bad[i], false), "'%s'",
                      bad[i]);
    uint64_t sent = 1, failed = 1;
    pm_notify_counts(nt, &sent, &failed);
    cr_assert_eq(sent + failed, 0);
    pm_notify_destroy(&nt);
}

/* ---- where notices go ------------------------------------------------- */

/* A one-connection-at-a-time SMTP sink on 127.0.0.1: accepts every
 * command, counts the messages it took. */
typedef struct {
    int port;
    atomic_int messages;
    testnet_server_t *server;
} s_sink_t;

static void
s_say(int fd, const char *line)
{
    ssize_t n = write(fd, line, strlen(line));
    (void)n; /* a client gone: the next read ends the session */
}

static void
s_sink_serve(int c, void *arg)
{
    s_sink_t *s = arg;
    FILE *in = fdopen(dup(c), "r");
    char line[1024];
    bool data = false;
    s_say(c, "220 sink\r\n");
    while (in && fgets(line, sizeof line, in)) {
        if (data) {
            if (strcmp(line, ".\r\n") == 0) {
                data = false;
                atomic_fetch_add(&s->messages, 1);
                s_say(c, "250 taken\r\n");
            }
        } else if (strncmp(line, "DATA", 4) == 0) {
            data = true;
            s_say(c, "354 go on\r\n");
        } else if (strncmp(line, "QUIT", 4) == 0) {
            s_say(c, "221 bye\r\n");
            break;
        } else {
            s_say(c, "250 ok\r\n");
        }
    }
    if (in)
        fclose(in);
}

static void
s_sink_start(s_sink_t *s)
{
    atomic_init(&s->messages, 0);
    s->server = testnet_server_start(s_sink_serve, s, &s->port);
    cr_assert_not_null(s->server);
}

static void
s_sink_stop(s_sink_t *s)
{
    testnet_server_stop(&s->server);
}

/* Waits until NT has sent and given up WANT notices in all. */
static void
s_wait_done(pm_notify_t *nt, uint64_t want, uint64_t *sent, uint64_t *failed)
{
    for (int i = 0; i < 1000; i++) {
        pm_notify_counts(nt, sent, failed);
        if (*sent + *failed >= want)
            return;
        usleep(10000);
    }
    cr_assert_fail("%" PRIu64 " notices done of %" PRIu64, *sent + *failed,
                   want);
}

/* The agent's listener, handed over beside the policy (pm_handoff.h),
 * comes before the milter's own notify_smtp, and is read for each notice:
 * written, changed to garbage, removed, the notices follow. */
Test(notify, the_agents_listener_comes_first)
{
    char dir[] = "/tmp/pm-test-notify.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *follow = pm_asprintf("%s/%s", dir, PM_HANDOFF_NOTIFY);
    s_sink_t sink;
    s_sink_start(&sink);
    /* notify_smtp names a port nobody listens on */
    pm_notify_t *nt =
        pm_notify_new("127.0.0.1:1", follow, "pm@node1.test", 1000, NULL);
    cr_assert_not_null(nt);
    char *addr = pm_asprintf("127.0.0.1:%d\n", sink.port);
    cr_assert_eq(pm_file_write(follow, addr, strlen(addr), 0640, -1, NULL),
                 PM_OK);
    uint64_t sent = 0, failed = 0;
    cr_assert(pm_notify_post(nt, &s_notice, "alice@node1.test", false));
    s_wait_done(nt, 1, &sent, &failed);
    cr_expect_eq(sent, 1, "the notice went to the agent's listener");
    cr_expect_eq(atomic_load(&sink.messages), 1);

    /* a file that names no address: notify_smtp, which fails here */
    cr_assert_eq(pm_file_write(follow, "nonsense", 8, 0640, -1, NULL), PM_OK);
    cr_assert(pm_notify_post(nt, &s_notice, "bob@node1.test", false));
    s_wait_done(nt, 2, &sent, &failed);
    cr_expect_eq(failed, 1);
    cr_expect_eq(atomic_load(&sink.messages), 1);

    /* the listener named again, then no file at all */
    cr_assert_eq(pm_file_write(follow, addr, strlen(addr), 0640, -1, NULL),
                 PM_OK);
    cr_assert(pm_notify_post(nt, &s_notice, "carol@node1.test", false));
    s_wait_done(nt, 3, &sent, &failed);
    cr_expect_eq(sent, 2);
    cr_assert_eq(unlink(follow), 0);
    cr_assert(pm_notify_post(nt, &s_notice, "dave@node1.test", false));
    s_wait_done(nt, 4, &sent, &failed);
    cr_expect_eq(failed, 2, "without the file: notify_smtp");
    cr_expect_eq(atomic_load(&sink.messages), 2);

    pm_notify_destroy(&nt);
    s_sink_stop(&sink);
    rmdir(dir);
    free(addr);
    free(follow);
}
