/* pm_ctl_show.h - how privmta-ctl shows things to a person, and in JSON.
 *
 * Text that came from an agent, a certificate or a client (node names,
 * errors, details) is escaped (pm_text_escape) and capped: a newline
 * cannot forge a row, ESC cannot drive the terminal. */
#ifndef PM_CTL_SHOW_H
#define PM_CTL_SHOW_H

#include "privmta.pb-c.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Caps on shown text, in bytes once escaped: a table cell, a line. */
#define PM_CTL_CELL_MAX 64
#define PM_CTL_LINE_MAX 400

/* Prints TEXT escaped, capped at MAX bytes, "-" when empty, padded to
 * WIDTH, then SEP. */
void pm_ctl_cell(const char *text, int width, size_t max, const char *sep);

/* "2026-11-20 10:00:00 UTC" for unix seconds T into BUF. */
void pm_ctl_utc(int64_t t, char *buf, size_t size);

/* What holds for the cluster in R (a NODES or SIGNATURES_CHECK answer),
 * one line each: mirrors no node may ask yet, and who fetches each
 * database for everyone. */
void pm_ctl_cluster_text(const Pm__Response *r);

/* Prints DOC indented (any JSON value; NULL prints null) and frees it. */
void pm_ctl_print_json(json_t *doc);

#endif
