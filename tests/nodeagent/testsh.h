/* testsh.h - what the Postfix node tests share: a shell command with its
 * output, a file's bytes, a free port. Tests only (Criterion asserts). */
#ifndef PM_TESTSH_H
#define PM_TESTSH_H

/* Runs a shell command made from FMT (popen); returns its exit code, -1
 * when it did not exit; its standard output in *OUT when OUT is given
 * (caller frees). */
int testsh_run(char **out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* PATH's bytes, NUL-terminated (caller frees); NULL when it cannot be
 * opened. */
char *testsh_slurp(const char *path);

/* A TCP port nobody listens on at ADDR (IPv4) right now. */
int testsh_free_port(const char *addr);

/* The runner's scratch directory for Postfix instances (ReportHook
 * PRE_ALL): /tmp/pm-test-NAME.XXXXXX, 0755, its path also in the
 * environment variable ENV (the tests run in children of the runner), and
 * the runner's pid in BASE/owner.pid, so that leftovers.sh tells a
 * directory whose runner was killed (a ctest timeout) from one in use.
 * Aborts when it cannot be made. The path is static. */
const char *testsh_base_new(const char *name, const char *env);

/* Stops every Postfix instance under BASE (deploy/postfix-node.sh
 * destroy) and the process in BASE/sink.pid, then removes BASE (ReportHook
 * POST_ALL). */
void testsh_base_destroy(const char *base);

#endif
