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

#endif
