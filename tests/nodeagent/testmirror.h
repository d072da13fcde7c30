/* testmirror.h - tests/data/clamav/mirror.py as a child process: a
 * ClamAV-style HTTP mirror on 127.0.0.1 serving a directory, with an
 * access log, for the tests of signature fetching and sharing. */
#ifndef PM_TESTMIRROR_H
#define PM_TESTMIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define TESTMIRROR_FIXTURES PM_SOURCE_DIR "/tests/data/clamav"

typedef struct {
    pid_t pid;
    char url[64]; /* http://127.0.0.1:PORT */
} testmirror_t;

/* Starts the mirror serving WWW, logging to LOG; PORTFILE is scratch.
 * Asserts (Criterion) that it comes up. */
void testmirror_start(testmirror_t *m, const char *www, const char *portfile,
                      const char *log);

/* Stops it (SIGTERM, reaped). Safe when it never started. */
void testmirror_stop(testmirror_t *m);

/* Copies fixture NAME into DIR as AS; with TAMPER one byte at offset 700
 * (inside the signed body, past the 512-byte header) is changed. */
void testmirror_copy(const char *name, const char *dir, const char *as,
                     bool tamper);

/* WWW serves version 6 as test.cvd and the five CDIFFs (2..6). */
void testmirror_publish_v6(const char *www);

/* Every request to the mirror of WWW answers STATUS ("429 120", "403 -"). */
void testmirror_status(const char *www, const char *status);

/* Lines of LOG that start with PREFIX ("GET /test.cvd 200 "). */
size_t testmirror_count(const char *log, const char *prefix);

#endif
