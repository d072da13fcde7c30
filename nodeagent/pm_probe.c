/* pm_probe.c - see pm_probe.h. */
#include "pm_probe.h"
#include "pm_cmd.h"
#include "pm_error.h"
#include "pm_file.h"
#include "pm_handoff.h"
#include "pm_mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* 32 random bytes as 64 hex digits (PM_PROBE_TOKEN_MAX holds them). */
static bool
s_token(char out[65])
{
    unsigned char raw[32];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        return false;
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return true;
}

/* The message, in a new file of this process's only (mkstemp: 0600, never
 * an existing name); smtp-source reads it (-F). *PATH: caller unlinks and
 * frees. */
static bool
s_message(const char *token, char **path, char **why)
{
    char tmpl[] = "/tmp/privmta-probe.XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) {
        pm_why(why, "probe", "cannot make the message file in /tmp: %s",
               strerror(errno));
        return false;
    }
    char *text = pm_asprintf(
        "From: privmta probe <privmta-probe@probe.invalid>\n"
        "Subject: privmta probe\n" PM_PROBE_HEADER ": %s\n"
        "\n"
        "This message checks this node's mail path after a restart;\n"
        "privmta-milter discards it once every check let it through.\n",
        token);
    size_t len = strlen(text);
    bool ok = write(fd, text, len) == (ssize_t)len;
    if (close(fd) != 0)
        ok = false;
    free(text);
    if (!ok) {
        pm_why(why, "probe", "cannot write the message file: %s",
               strerror(errno));
        unlink(tmpl);
        return false;
    }
    *path = pm_strdup(tmpl);
    return true;
}

static bool
s_send(const pm_probe_config_t *cfg, const char *file, const char *host,
       int port, char **why)
{
    const char *prog =
        cfg->smtp_source ? cfg->smtp_source : PM_PROBE_SMTP_SOURCE;
    char *target = strchr(host, ':') ? pm_asprintf("[%s]:%d", host, port)
                                     : pm_asprintf("%s:%d", host, port);
    char *argv[] = {(char *)prog, "-m",         "1",  "-f",          "",
                    "-t",         "postmaster", "-M", "[127.0.0.1]", "-F",
                    (char *)file, target,       NULL};
    pm_cmd_opts_t opts = {.timeout_ms = PM_PROBE_MS,
                          .cancelled = cfg->cancelled,
                          .cancel_arg = cfg->cancel_arg};
    pm_cmd_result_t r;
    int rc = pm_cmd_run(argv, &opts, &r);
    /* smtp-source exits 1 on any refusal, saying it on stderr ("end of
     * data rejected: 550 5.7.0 ..."): the filter's proof is one */
    bool passed = rc > 0 && strstr(r.err, PM_PROBE_PASSED);
    if (rc == 0)
        pm_why(why, "probe",
               "probe through %s: delivered, not answered by privmta-milter "
               "(this listener does not run it, or Postfix let mail by "
               "while it was down)",
               target);
    else if (!passed) {
        char *what = pm_asprintf("probe through %s", target);
        char *text = pm_cmd_why(what, &r);
        pm_why(why, "probe", "%s", text);
        free(text);
        free(what);
    }
    pm_cmd_result_clear(&r);
    free(target);
    return passed;
}

bool
pm_probe_send(const pm_probe_config_t *cfg, const char *host, int port,
              char **why)
{
    char token[65];
    if (!s_token(token)) {
        pm_why(why, "probe", "no random token: %s", strerror(errno));
        return false;
    }
    char *key = pm_asprintf("%s/%s", cfg->handoff_dir, PM_HANDOFF_PROBE);
    char *file = NULL;
    bool ok = pm_file_write(key, token, strlen(token), 0640, cfg->gid, why) ==
                  PM_OK &&
              s_message(token, &file, why);
    if (ok)
        ok = s_send(cfg, file, host, port, why);
    if (file)
        unlink(file);
    free(file);
    unlink(key); /* a token is valid only while its probe runs */
    free(key);
    return ok;
}
