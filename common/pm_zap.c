/* pm_zap.c - see pm_zap.h. */
#include "pm_zap.h"

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

bool
pm_zap_recv(zsock_t *zap, pm_zap_request_t *req)
{
    zmsg_t *msg = zmsg_recv(zap);
    if (!msg)
        return false;
    zframe_t *version = zmsg_first(msg), *id = zmsg_next(msg);
    zframe_t *domain = zmsg_next(msg);
    zmsg_next(msg); /* address */
    zmsg_next(msg); /* routing id */
    zframe_t *mech = zmsg_next(msg), *cred = zmsg_next(msg);
    bool curve = cred && zframe_streq(version, "1.0") &&
                 zframe_streq(mech, "CURVE") && zframe_size(cred) == 32;
    *req = (pm_zap_request_t){
        .msg = msg, .id = id, .domain = domain, .curve = curve ? cred : NULL};
    return true;
}

void
pm_zap_reply(zsock_t *zap, pm_zap_request_t *req, const char *user_id,
             zframe_t **meta_p, const char *refusal)
{
    zframe_t *meta = meta_p ? *meta_p : NULL;
    if (meta_p)
        *meta_p = NULL;
    if (!user_id)
        zframe_destroy(&meta); /* a refusal carries none */
    zmsg_t *rep = zmsg_new();
    zmsg_addstr(rep, "1.0");
    zframe_t *f = req->id ? zframe_dup(req->id) : zframe_new_empty();
    zmsg_append(rep, &f);
    zmsg_addstr(rep, user_id ? "200" : "400");
    zmsg_addstr(rep, user_id ? "OK" : refusal);
    zmsg_addstr(rep, user_id ? user_id : "");
    f = meta ? meta : zframe_new_empty();
    zmsg_append(rep, &f);
    if (zmsg_send(&rep, zap) != 0)
        zmsg_destroy(&rep);
    zmsg_destroy(&req->msg);
    *req = (pm_zap_request_t){0};
}

/* Appends the ZMTP property NAME = VALUE to BUF: the name's length in one
 * byte, the value's in four (network order). */
static void
s_property(zchunk_t *buf, const char *name, const char *value)
{
    size_t nlen = strlen(name), vlen = strlen(value);
    uint8_t n = (uint8_t)nlen,
            v[4] = {(uint8_t)(vlen >> 24), (uint8_t)(vlen >> 16),
                    (uint8_t)(vlen >> 8), (uint8_t)vlen};
    zchunk_extend(buf, &n, 1);
    zchunk_extend(buf, name, nlen);
    zchunk_extend(buf, v, 4);
    zchunk_extend(buf, value, vlen);
}

zframe_t *
pm_zap_metadata(const char *name, ...)
{
    zchunk_t *buf = zchunk_new(NULL, 0);
    va_list ap;
    va_start(ap, name);
    for (; name; name = va_arg(ap, const char *))
        s_property(buf, name, va_arg(ap, const char *));
    va_end(ap);
    zframe_t *f = zframe_new(zchunk_data(buf), zchunk_size(buf));
    zchunk_destroy(&buf);
    return f;
}
