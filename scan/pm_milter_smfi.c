/* pm_milter_smfi.c - libmilter callbacks: translate, decide, apply.
 *
 * One libmilter thread per SMTP connection. Each connection owns a
 * pm_mmsg_t (reused from message to message: its buffer keeps its
 * capacity) and, from MAIL FROM to the end of the message, one reference
 * to the policy snapshot that was current at MAIL FROM.
 */
#include "pm_log.h"
#include "pm_mem.h"
#include "pm_milter.h"
#include "pm_milter_private.h"
#include "pm_milter_smfi.h"

#include <libmilter/mfapi.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    pm_mmsg_t *msg;
    pm_mpolicy_t *pol;
} s_conn_t;

static pm_milter_t *s_milter;

/* What a stage before the end of the message answers: nothing when the
 * MTA agreed not to wait (pm_milter_smfi_register's NO_REPLIES), else
 * "continue". Every decision is made at the end of the message. */
static sfsistat s_go = SMFIS_CONTINUE;

#define S_NO_REPLY_STAGES                                                      \
    (SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT |           \
     SMFIP_NR_DATA | SMFIP_NR_UNKN | SMFIP_NR_HDR | SMFIP_NR_EOH |             \
     SMFIP_NR_BODY)

static s_conn_t *
s_conn(SMFICTX *ctx)
{
    s_conn_t *c = smfi_getpriv(ctx);
    if (!c) {
        c = pm_calloc(1, sizeof *c);
        c->msg = pm_mmsg_new(pm_milter_max_bytes(s_milter));
        smfi_setpriv(ctx, c);
    }
    return c;
}

static void
s_end_message(s_conn_t *c)
{
    pm_mmsg_reset(c->msg);
    pm_mpolicy_unref(&c->pol);
}

static sfsistat
s_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
    (void)hostname;
    s_conn_t *c = s_conn(ctx);
    pm_mmsg_set_client(c->msg, hostaddr);
    pm_mmsg_set_myhostname(c->msg, smfi_getsymval(ctx, "j"));
    return s_go;
}

static sfsistat
s_envfrom(SMFICTX *ctx, char **argv)
{
    s_conn_t *c = s_conn(ctx);
    s_end_message(c);
    c->pol = pm_milter_policy(s_milter);
    pm_mmsg_set_sender(c->msg, argv[0]);
    pm_mmsg_set_auth(c->msg, smfi_getsymval(ctx, "{auth_authen}"));
    pm_mmsg_set_queue_id(c->msg, smfi_getsymval(ctx, "i"));
    return s_go;
}

/* HELO and DATA need nothing from us, but are registered on purpose:
 * Postfix sends the macros of a stage even when the milter skips the
 * stage, and a macro packet that gets no reply is ACKed only by the
 * delayed ACK (~40 ms), during which Nagle holds Postfix's next packet
 * back. With a reply to every stage, each packet is ACKed at once: no
 * per-message stall on TCP milter sockets. (On a unix socket there is no
 * Nagle, and no stage before the end of the message is answered.) */
static sfsistat
s_continue(SMFICTX *ctx)
{
    (void)ctx;
    return s_go;
}

static sfsistat
s_helo(SMFICTX *ctx, char *name)
{
    (void)name;
    return s_continue(ctx);
}

static sfsistat
s_envrcpt(SMFICTX *ctx, char **argv)
{
    pm_mmsg_add_rcpt(s_conn(ctx)->msg, argv[0]);
    return s_go;
}

static sfsistat
s_header(SMFICTX *ctx, char *name, char *value)
{
    pm_mmsg_add_header(s_conn(ctx)->msg, name, value);
    return s_go;
}

static sfsistat
s_eoh(SMFICTX *ctx)
{
    pm_mmsg_end_headers(s_conn(ctx)->msg);
    return s_go;
}

static sfsistat
s_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
    pm_mmsg_add_body(s_conn(ctx)->msg, chunk, len);
    return s_go;
}

/* Header changes of an accepted message; false when libmilter refused. */
static bool
s_apply(SMFICTX *ctx, const pm_mverdict_t *v)
{
    bool ok = true;
    for (size_t i = 0; i < v->n_add; i++)
        ok = ok &&
             smfi_addheader(ctx, v->add[i].name, v->add[i].value) == MI_SUCCESS;
    if (v->subject)
        ok = ok && (v->subject_is_new
                        ? smfi_addheader(ctx, "Subject", v->subject)
                        : smfi_chgheader(ctx, "Subject", 1, v->subject)) ==
                       MI_SUCCESS;
    if (v->dkim_value)
        ok = ok && smfi_insheader(ctx, 0, "DKIM-Signature", v->dkim_value) ==
                       MI_SUCCESS;
    return ok;
}

static sfsistat
s_reply(SMFICTX *ctx, const pm_mverdict_t *v, sfsistat st)
{
    smfi_setreply(ctx, (char *)v->rcode, (char *)v->xcode, v->text);
    return st;
}

static sfsistat
s_eom(SMFICTX *ctx)
{
    s_conn_t *c = s_conn(ctx);
    const char *qid = smfi_getsymval(ctx, "i");
    if (qid)
        pm_mmsg_set_queue_id(c->msg, qid);
    pm_mverdict_t v;
    pm_milter_run_probe(s_milter, c->msg);
    pm_milter_run_decide(s_milter, c->pol, c->msg, &v);
    if (v.action == PM_MV_ACCEPT && !s_apply(ctx, &v)) {
        pm_mverdict_clear(&v);
        pm_milter_decide(NULL, c->msg, NULL, &v); /* a plain tempfail */
        free(v.log);
        v.log = pm_strdup("tempfail: header changes refused by the MTA");
    }
    pm_info("%s: %s (from=<%s>, revision %llu)", pm_mmsg_queue_id(c->msg),
            v.log, pm_mmsg_sender(c->msg),
            (unsigned long long)pm_mpolicy_rev(c->pol));
    pm_milter_after(s_milter, c->pol, c->msg, &v);
    sfsistat st = SMFIS_CONTINUE;
    if (v.action == PM_MV_REJECT)
        st = s_reply(ctx, &v, SMFIS_REJECT);
    else if (v.action == PM_MV_TEMPFAIL)
        st = s_reply(ctx, &v, SMFIS_TEMPFAIL);
    else if (v.action == PM_MV_DISCARD)
        st = SMFIS_DISCARD;
    pm_mverdict_clear(&v);
    s_end_message(c);
    return st;
}

static sfsistat
s_abort(SMFICTX *ctx)
{
    s_conn_t *c = smfi_getpriv(ctx);
    if (c)
        s_end_message(c);
    return SMFIS_CONTINUE;
}

static sfsistat
s_close(SMFICTX *ctx)
{
    s_conn_t *c = smfi_getpriv(ctx);
    if (c) {
        s_end_message(c);
        pm_mmsg_destroy(&c->msg);
        free(c);
        smfi_setpriv(ctx, NULL);
    }
    return SMFIS_CONTINUE;
}

/* The actions we use, and "no reply" for the early stages when asked
 * (s_go) and the MTA offers it. */
static sfsistat
s_negotiate(SMFICTX *ctx, unsigned long actions, unsigned long steps,
            unsigned long f2, unsigned long f3, unsigned long *our_actions,
            unsigned long *our_steps, unsigned long *our_f2,
            unsigned long *our_f3)
{
    (void)ctx;
    (void)actions;
    (void)f2;
    (void)f3;
    *our_actions = SMFIF_ADDHDRS | SMFIF_CHGHDRS;
    /* *our_steps comes in holding libmilter's own (stages we registered
     * no callback for) */
    if (s_go == SMFIS_NOREPLY)
        *our_steps |= steps & S_NO_REPLY_STAGES;
    *our_f2 = *our_f3 = 0;
    return SMFIS_CONTINUE;
}

static struct smfiDesc s_desc = {
    .xxfi_name = "privmta-milter",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS,
    .xxfi_connect = s_connect,
    .xxfi_helo = s_helo,
    .xxfi_envfrom = s_envfrom,
    .xxfi_envrcpt = s_envrcpt,
    .xxfi_header = s_header,
    .xxfi_eoh = s_eoh,
    .xxfi_body = s_body,
    .xxfi_eom = s_eom,
    .xxfi_abort = s_abort,
    .xxfi_close = s_close,
    .xxfi_data = s_continue,
    .xxfi_negotiate = s_negotiate,
};

int
pm_milter_smfi_register(pm_milter_t *milter, bool no_replies)
{
    s_milter = milter;
    s_go = no_replies ? SMFIS_NOREPLY : SMFIS_CONTINUE;
    return smfi_register(s_desc) == MI_SUCCESS ? PM_OK : PM_EINTERNAL;
}
