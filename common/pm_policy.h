/* pm_policy.h - the policy table: every key declared once.
 *
 * Each entry of the table (pm_policy.c) names a public key of the contract
 * (DESIGN.md), its type, its default in policy-file syntax, its bounds, the
 * Pm__Policy field it lives in and what it drives. Parsing, validation,
 * defaults, YAML and JSON rendering, diffs, per-node overrides and
 * `privmta-ctl policy show` are all derived from it; there is no second list
 * of keys anywhere.
 *
 * A policy in memory is a Pm__Policy (proto/privmta.proto). Functions that
 * return one hand ownership to the caller, who frees it with pm_policy_free.
 */
#ifndef PM_POLICY_H
#define PM_POLICY_H

#include "pm_diag.h"
#include "pm_value.h"
#include "privmta.pb-c.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Sizes. A policy is a few kilobytes of settings; what can make it big is
 * custom signature files, which travel inside it (the controller stores
 * and every node compiles exactly the bytes that were validated).
 *
 * PM_POLICY_SIGNATURES_MAX bounds the content of all custom signature files
 * of one policy together: as much as one file may be (PM_WIRE_CONTENT_MAX),
 * enough for the hand-written signatures a site adds to ClamAV's own
 * databases (those arrive through antivirus.mirrors, not through here), and
 * little enough that every node compiles them in well under a second at
 * each apply.
 *
 * PM_POLICY_FILE_MAX bounds a policy file (pm_policy_load_file). It is twice
 * the signatures, so that `policy show`, which writes signatures inline (a
 * few bytes of indentation per line), always gives a file that `policy
 * push` takes back; and small enough that any file up to it is read, or
 * refused with its line and column, within a second (every bound of
 * pm_value.h stops parsing where it is crossed; bench/bench_policy_parse.sh
 * measures the worst cases). Files that are bigger are refused before they
 * are read. */
#define PM_POLICY_SIGNATURES_MAX (8u << 20)
#define PM_POLICY_FILE_MAX (16u << 20)

typedef enum {
    PM_KT_BOOL,
    PM_KT_PERCENT,    /* integer 0..100 */
    PM_KT_DURATION,   /* seconds, written 30s 15m 2h 1d 1w */
    PM_KT_ENUM,       /* one of choices */
    PM_KT_STRING,     /* text checked by check() */
    PM_KT_LIST,       /* list of text items, each checked by check() */
    PM_KT_SIGNATURES, /* list of {name, sha256, content | file} */
    PM_KT_DKIM,       /* list of {domain, selector, key} */
} pm_ktype_t;

/* What a change of a key takes on a node before it is enforced, least
 * first. A push applies every level up to PM_EFFECT_RELOAD on all nodes
 * at once (none refuses a connection); PM_EFFECT_RESTART is for a key
 * that only a restart makes Postfix or the filter take (Postfix documents
 * inet_interfaces and inet_protocols so), which goes node by node in a
 * rolling restart. No key of the contract needs one today. */
typedef enum {
    PM_EFFECT_LIVE,    /* the filter and the agent's updater follow each
                          revision as they run: the next message or check */
    PM_EFFECT_ENGINE,  /* the filter builds a new ClamAV engine in the
                          background and swaps it; mail flows meanwhile */
    PM_EFFECT_RELOAD,  /* postfix reload: new smtpd processes take the
                          main.cf parameters; sessions in flight finish */
    PM_EFFECT_RESTART, /* a restart of Postfix or the filter, node by node */
} pm_effect_t;

#define PM_KF_NODE 0x1u /* may be overridden per node */
#define PM_KF_FOLD                                                             \
    0x2u /* list items compare case-insensitively, lowercased                  \
          */

typedef struct {
    const char *name; /* public key, e.g. "outbound.relay_host" */
    pm_ktype_t type;
    const char *field;            /* Pm__Policy field holding the value */
    const char *dflt;             /* default, in policy-file syntax */
    char *(*check)(const char *); /* item check (pm_check.h), or NULL */
    const char *const *choices;   /* PM_KT_ENUM: NULL-terminated */
    unsigned max;                 /* list items / string characters, 0: none */
    unsigned flags;               /* PM_KF_* */
    const char *drives;           /* what it drives, in words (docs) */
    const char *help;             /* one line for docs and `show` comments */
    /* The main.cf parameters whose rendered value depends on this key,
     * NULL-terminated; NULL when it drives none. The Postfix renderer
     * (nodeagent/pm_pf_render) owns exactly these parameters and finds
     * here which key a plain parameter copies; its tests check that a
     * key changes no parameter it does not name. */
    const char *const *postfix;
    /* What a change takes (at least PM_EFFECT_RELOAD for a key with
     * main.cf parameters: test_policy checks it). */
    pm_effect_t effect;
} pm_key_t;

/* The table, in display order; sets *n to the number of keys. */
const pm_key_t *pm_policy_keys(size_t *n);

/* Looks a key up by its public name; NULL when unknown. */
const pm_key_t *pm_policy_key(const char *name);

/* The closest known key to an unknown NAME ("did you mean"), or NULL when
 * nothing is close. The result is static. */
const char *pm_policy_suggest(const char *name);

/* A policy holding every default. Caller owns it. */
Pm__Policy *pm_policy_new(void);

/* A deep copy. Caller owns it. */
Pm__Policy *pm_policy_dup(const Pm__Policy *policy);

/* Frees a policy; accepts NULL, nulls *policy_p. */
void pm_policy_free(Pm__Policy **policy_p);

/* Reads a whole policy document (already parsed) into a new policy that
 * starts from the defaults: every key not written keeps its default.
 * Problems (unknown keys, wrong types, bad values...) go to DIAG with their
 * line; after 100 problems reading stops (one more line says so).
 * BASE_DIR resolves relative `file:` paths of custom signatures; NULL
 * refuses `file:` altogether (content only): only a policy file that the
 * admin's own privmta-ctl reads may name files, never a document that came
 * from elsewhere. Returns NULL when any problem was found, after reporting
 * them. Runs pm_policy_validate. */
Pm__Policy *pm_policy_from_value(const pm_value_t *doc, const char *base_dir,
                                 pm_diag_t *diag);

/* Checks every value of POLICY against the table and the rules between keys
 * (tag < kill, level matches percents, unique names, signatures compile in a
 * scratch libclamav engine, overrides name known per-node keys with valid
 * values). Adds one line per problem to DIAG; returns the number found.
 * Used on every policy that arrives from the network too. */
size_t pm_policy_validate(const Pm__Policy *policy, pm_diag_t *diag);

/* Applies `policy set` edits to POLICY in place: KEY=VALUE (Pm__Edit ASSIGN),
 * KEY+=ITEM (ADD, lists only; "@common" adds the preset), KEY-=ITEM (REMOVE)
 * and RESET. With NODE, the edits become per-node overrides of NODE. VALUE
 * is policy-file syntax ("true", "[a, b]", "a b"). Problems go to DIAG; on
 * any problem *POLICY_P is left unchanged and the count is returned; on
 * success *POLICY_P is replaced by the edited policy. */
size_t pm_policy_edit(Pm__Policy **policy_p, const char *node,
                      Pm__Edit *const *edits, size_t n, pm_diag_t *diag);

/* The effective policy of NODE: POLICY with NODE's overrides applied and no
 * overrides left. Caller owns it. */
Pm__Policy *pm_policy_for_node(const Pm__Policy *policy, const char *node);

/* Called by pm_policy_diff for each difference: NAME is the key's name, or
 * "nodes.NODE.KEY" for a per-node override; BEFORE and AFTER are the
 * values as compact JSON text (pm_policy_key_text), NULL for an override
 * absent on that side. */
typedef void(pm_policy_diff_fn)(const char *name, const pm_key_t *key,
                                const char *before, const char *after,
                                void *arg);

/* Compares A with B: calls FN (may be NULL) for every key whose value
 * differs, in table order, then for every per-node override that differs.
 * Returns the most any difference takes (pm_key_t.effect), PM_EFFECT_LIVE
 * when there is none. */
pm_effect_t pm_policy_diff(const Pm__Policy *a, const Pm__Policy *b,
                           pm_policy_diff_fn *fn, void *arg);

/* The level's name ("live", "engine", "reload", "restart"), as the
 * controller's answers and `policy show` comments carry it. */
const char *pm_effect_name(pm_effect_t effect);

/* The value of a PM_KT_BOOL key, and of a PM_KT_STRING or PM_KT_ENUM key
 * (owned by POLICY, never NULL). Asking for another type is a programming
 * error (assert). */
bool pm_policy_get_bool(const Pm__Policy *policy, const pm_key_t *key);
const char *pm_policy_get_string(const Pm__Policy *policy, const pm_key_t *key);

/* Renders one key's value as compact JSON text (for diffs and messages).
 * Caller frees. */
char *pm_policy_key_text(const Pm__Policy *policy, const pm_key_t *key);

/* Renders POLICY as a YAML policy file that pm_policy_from_value reads back
 * to the same digest. HEADER (may be NULL) is written first as comment
 * lines. Caller frees. */
char *pm_policy_to_yaml(const Pm__Policy *policy, const char *header);

/* Renders POLICY as a JSON object (nested like the YAML). Caller frees. */
char *pm_policy_to_json(const Pm__Policy *policy, bool pretty);

/* A JSON array of the N strings ITEMS, as a policy list renders: for any
 * list of text that goes out as JSON. Caller owns the reference. */
json_t *pm_policy_json_strings(char *const *items, size_t n);

/* Writes the sha256 (64 hex chars + NUL) of POLICY's canonical form into
 * out: equal policies have equal digests whatever their history. */
void pm_policy_digest(const Pm__Policy *policy, char out[65]);

/* Loads a policy file (YAML or JSON) of at most PM_POLICY_FILE_MAX bytes
 * from PATH (never blocking on a FIFO or device: pm_file_read); relative
 * `file:` references are read from PATH's directory. Problems are reported
 * as "PATH:LINE: KEY: problem" into DIAG. Returns NULL on any problem. */
Pm__Policy *pm_policy_load_file(const char *path, pm_diag_t *diag);

/* The "often prohibited" extension preset (Carbonio's 27), NULL-ended. */
extern const char *const pm_policy_common_extensions[];

#endif
