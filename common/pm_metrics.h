/* pm_metrics.h - Prometheus text exposition, served over HTTP.
 *
 * Off unless a daemon's metrics_listen names an address. The daemon's own
 * thread renders the whole exposition (pm_metrics_family/_sample/_hist
 * into a memstream) and hands the text to pm_metrics_server_set; the
 * server's thread (libmicrohttpd's) only copies the last text out under a
 * lock. So a scrape never touches daemon state, and a slow or hostile
 * scraper costs one of PM_METRICS_CONNS connections for at most
 * PM_METRICS_TIMEOUT_S, nothing more: the controller and the root agent
 * stay responsive whatever the scraper does.
 *
 * Served: GET or HEAD /metrics (text/plain; version=0.0.4). Anything else
 * is 404, another method 405. Names follow Prometheus conventions:
 * privmta_<daemon>_..., _total for counters, _seconds for durations.
 */
#ifndef PM_METRICS_H
#define PM_METRICS_H

#include <stdint.h>
#include <stdio.h>

#define PM_METRICS_CONNS 8      /* scrapes served at once */
#define PM_METRICS_TIMEOUT_S 10 /* an idle connection is closed after */

/* ---- Writing the exposition --------------------------------------------- */

/* The text being written: *TEXT (*LEN bytes) once pm_metrics_end closed
 * F; the caller frees *TEXT. Out of memory aborts, as in pm_mem.h. */
FILE *pm_metrics_begin(char **text, size_t *len);
void pm_metrics_end(FILE *f);

/* "# HELP NAME HELP" and "# TYPE NAME TYPE" (counter, gauge, histogram). */
void pm_metrics_family(FILE *f, const char *name, const char *type,
                       const char *help);

/* One sample: NAME{LABEL="VALUE"} V, or NAME V when LABEL is NULL. VALUE
 * is escaped as the format wants (backslash, quote, newline). */
void pm_metrics_sample(FILE *f, const char *name, const char *label,
                       const char *value, double v);

/* A histogram of durations in seconds, with fixed buckets from 5 ms to
 * 10 s (PM_METRICS_BUCKETS of them, +Inf apart). Zeroed is empty. */
#define PM_METRICS_BUCKETS 11
typedef struct {
    uint64_t le[PM_METRICS_BUCKETS]; /* observations <= each bound */
    uint64_t count;
    double sum;
} pm_metrics_hist_t;

void pm_metrics_hist_observe(pm_metrics_hist_t *h, double seconds);

/* The family and every NAME_bucket / NAME_sum / NAME_count sample. */
void pm_metrics_hist_write(FILE *f, const char *name, const char *help,
                           const pm_metrics_hist_t *h);

/* ---- Serving it --------------------------------------------------------- */

typedef struct pm_metrics_server pm_metrics_server_t;

/* Listens on LISTEN, "HOST:PORT" with a numeric IPv4 host or "[V6]:PORT"
 * (port 0: the kernel picks, see pm_metrics_server_port). Until the first
 * pm_metrics_server_set, /metrics answers 503. Returns NULL with *WHY
 * (caller frees) when LISTEN is malformed or cannot be bound. */
pm_metrics_server_t *pm_metrics_server_new(const char *listen, char **why);

/* The port it listens on. */
unsigned pm_metrics_server_port(const pm_metrics_server_t *self);

/* Serves TEXT (LEN bytes, copied) from now on. */
void pm_metrics_server_set(pm_metrics_server_t *self, const char *text,
                           size_t len);

/* Stops serving and frees SELF; accepts NULL; nulls *SELF_P. */
void pm_metrics_server_destroy(pm_metrics_server_t **self_p);

#endif
