/* testsh.c - shared helpers of the Postfix node tests. */
#include "testnet.h"
#include "testsh.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Everything IN has left to read (caller frees). */
static char *
s_read_all(FILE *in)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    char chunk[4096];
    for (size_t r; (r = fread(chunk, 1, sizeof chunk, in)) > 0;)
        fwrite(chunk, 1, r, mem);
    fclose(mem);
    return buf;
}

int
testsh_run(char **out, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "popen %s", cmd);
    char *buf = s_read_all(p);
    int st = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char *
testsh_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = s_read_all(f);
    fclose(f);
    return buf;
}

int
testsh_free_port(const char *addr)
{
    int port = testnet_free_port(addr);
    cr_assert(port > 0, "no free port on %s", addr);
    return port;
}

const char *
testsh_base_new(const char *name, const char *env)
{
    static char base[96];
    snprintf(base, sizeof base, "/tmp/pm-test-%s.XXXXXX", name);
    if (!mkdtemp(base) || chmod(base, 0755) != 0)
        abort();
    setenv(env, base, 1);
    char path[128];
    snprintf(path, sizeof path, "%s/owner.pid", base);
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fprintf(f, "%ld\n", (long)getpid());
    fclose(f);
    return base;
}

void
testsh_base_destroy(const char *base)
{
    int rc = testsh_run(NULL,
                        "for d in %s/*/; do [ -d \"$d/etc\" ] && bash "
                        "%s/deploy/postfix-node.sh destroy \"$d\" >/dev/null "
                        "2>&1; done; pkill -F %s/sink.pid 2>/dev/null; "
                        "rm -rf %s",
                        base, PM_SOURCE_DIR, base, base);
    if (rc != 0)
        fprintf(stderr, "cleanup of %s failed\n", base);
}
