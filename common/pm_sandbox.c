/* pm_sandbox.c - see pm_sandbox.h. */
#include "pm_sandbox.h"
#include "pm_error.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* One rule: SYSCALL answers ACTION when the comparisons hold (none:
 * always). */
static bool
s_rule(scmp_filter_ctx ctx, uint32_t action, int syscall, unsigned n,
       const struct scmp_arg_cmp *cmp)
{
    return seccomp_rule_add_array(ctx, action, syscall, n, cmp) == 0;
}

/* The threads of this process now (/proc/self/status), 0 if unknown. */
static int
s_threads(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[128];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

int
pm_sandbox_no_spawn(unsigned flags, char **why)
{
    const uint32_t no = SCMP_ACT_ERRNO(EPERM);
    const scmp_datum_t self = (scmp_datum_t)getpid();
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        pm_why(why, "sandbox", "no_new_privs: %s", strerror(errno));
        return PM_EINTERNAL;
    }
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    const struct scmp_arg_cmp other = SCMP_A0(SCMP_CMP_NE, self);
    const struct scmp_arg_cmp not_unix = SCMP_A0(SCMP_CMP_NE, AF_UNIX);
    const int never[] = {SCMP_SYS(execve),
                         SCMP_SYS(execveat),
                         SCMP_SYS(fork),
                         SCMP_SYS(vfork),
                         SCMP_SYS(tkill),
                         SCMP_SYS(process_vm_readv),
                         SCMP_SYS(process_vm_writev)};
    /* threads already started get it too (the kernel's TSYNC); asked only
     * then: libseccomp needs the seccomp(2) call for it, which systemd's
     * @system-service filter refuses, where prctl(2) works */
    bool alone = s_threads() == 1;
    bool ok = ctx != NULL &&
              (alone || seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1) == 0);
    for (size_t i = 0; ok && i < sizeof never / sizeof never[0]; i++)
        ok = s_rule(ctx, no, never[i], 0, NULL);
#ifdef __SANITIZE_ADDRESS__
    /* LeakSanitizer's check at exit runs a tracer: clone(CLONE_VM) and
     * ptrace of our own threads. Sanitizer builds let those through. */
    const struct scmp_arg_cmp clone_no =
        SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD | CLONE_VM, 0);
#else
    const struct scmp_arg_cmp clone_no =
        SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0);
    ok = ok && s_rule(ctx, no, SCMP_SYS(ptrace), 0, NULL);
#endif
    ok = ok && s_rule(ctx, no, SCMP_SYS(clone), 1, &clone_no) &&
         s_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0, NULL) &&
         s_rule(ctx, no, SCMP_SYS(kill), 1, &other) &&
         s_rule(ctx, no, SCMP_SYS(tgkill), 1, &other) &&
         ((flags & PM_SANDBOX_NETWORK) ||
          s_rule(ctx, no, SCMP_SYS(socket), 1, &not_unix)) &&
         seccomp_load(ctx) == 0;
    if (!ok)
        pm_why(why, "sandbox", "cannot install the seccomp filter%s",
               !ctx     ? " (out of memory)"
               : !alone ? " on threads already started (no seccomp(2) "
                          "TSYNC here: install it before any thread)"
                        : "");
    seccomp_release(ctx);
    return ok ? PM_OK : PM_EINTERNAL;
}
