/* testmirror.c - see testmirror.h. */
#include "testmirror.h"
#include "pm_mem.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void
testmirror_start(testmirror_t *m, const char *www, const char *portfile,
                 const char *log)
{
    m->pid = fork();
    cr_assert(m->pid >= 0);
    if (m->pid == 0) {
        execlp("python3", "python3", TESTMIRROR_FIXTURES "/mirror.py", www,
               portfile, log, (char *)NULL);
        _exit(127);
    }
    int port = 0;
    for (int i = 0; i < 400 && port == 0; i++) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            cr_assert_eq(fscanf(f, "%d", &port), 1);
            fclose(f);
        } else {
            usleep(25000);
        }
    }
    cr_assert(port > 0, "the mirror did not start");
    snprintf(m->url, sizeof m->url, "http://127.0.0.1:%d", port);
}

void
testmirror_stop(testmirror_t *m)
{
    if (m->pid > 0) {
        kill(m->pid, SIGTERM);
        waitpid(m->pid, NULL, 0);
    }
    m->pid = -1;
}

void
testmirror_copy(const char *name, const char *dir, const char *as, bool tamper)
{
    char *from = pm_asprintf("%s/%s", TESTMIRROR_FIXTURES, name);
    char *to = pm_asprintf("%s/%s.tmp", dir, as);
    char *final = pm_asprintf("%s/%s", dir, as);
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    cr_assert(in && out, "copy %s to %s", from, to);
    char buf[16384];
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (tamper && total <= 700 && 700 < total + n)
            buf[700 - total] ^= 0x01;
        cr_assert_eq(fwrite(buf, 1, n, out), n);
        total += n;
    }
    cr_assert(total > 700 || !tamper);
    fclose(in);
    fclose(out);
    /* renamed into place: the mirror never serves half a file */
    cr_assert_eq(rename(to, final), 0);
    free(from);
    free(to);
    free(final);
}

void
testmirror_publish_v6(const char *www)
{
    for (int v = 2; v <= 6; v++) {
        char name[32];
        snprintf(name, sizeof name, "test-%d.cdiff", v);
        testmirror_copy(name, www, name, false);
    }
    testmirror_copy("test-6.cvd", www, "test.cvd", false);
}

void
testmirror_status(const char *www, const char *status)
{
    char *path = pm_asprintf("%s/.status", www);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(status, f);
    fclose(f);
    free(path);
}

size_t
testmirror_count(const char *log, const char *prefix)
{
    FILE *f = fopen(log, "r");
    size_t n = 0;
    char line[512];
    while (f && fgets(line, sizeof line, f))
        n += strncmp(line, prefix, strlen(prefix)) == 0;
    if (f)
        fclose(f);
    return n;
}
