/* pm_cmd.c - running another program: posix_spawn, two capture pipes, a
 * deadline, a cap and a way to cancel. */
#include "pm_cmd.h"
#include "pm_clock.h"
#include "pm_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_TIMEOUT_MS 15000
#define S_MAX_OUTPUT (1u << 20)
#define S_ASK_MS 50     /* how often CANCELLED is asked */
#define S_GRACE_MS 1000 /* SIGTERM to SIGKILL; exit to giving up the pipes */
#define S_CHUNK 16384   /* bytes per read */
#define S_LINE_MAX 511  /* bytes of a line pm_cmd_why quotes */

extern char **environ;

/* One captured stream. */
typedef struct {
    char *buf; /* NUL-terminated once anything was read */
    size_t len;
    size_t cap; /* bytes allocated */
    int fd;     /* -1 once closed */
} s_sink_t;

/* One running child. */
typedef struct {
    pid_t pid;
    s_sink_t sink[2]; /* stdout, stderr */
    size_t max;       /* cap per sink */
    bool reaped;
    int wstatus;
    long term_at; /* when the group got SIGTERM, or 0 */
    char *fail;
} s_job_t;

/* The first failure is the one the caller hears about. */
static void
s_fail(s_job_t *j, char *why)
{
    if (j->fail)
        free(why);
    else
        j->fail = why;
}

static void
s_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Moves *FD to 3 or above: the child's 0-2 are set up from these
 * descriptors, and one sitting on 0-2 itself (a daemon started with them
 * closed) would be overwritten before it is copied. */
static bool
s_high(int *fd)
{
    if (*fd > 2)
        return true;
    int high = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
    close(*fd);
    *fd = high;
    return high >= 0;
}

/* Pipes and terminals are close-on-exec from the start: a spawn in another
 * thread must not inherit them (the child here gets them through dup2). */
static bool
s_pipe(int p[2])
{
    if (pipe2(p, O_CLOEXEC) < 0)
        return false;
    if (s_high(&p[0]) && s_high(&p[1]))
        return true;
    s_close(&p[0]);
    s_close(&p[1]);
    return false;
}

/* A pseudo-terminal: P[0] the side read here, P[1] the terminal the child
 * writes to. posix_openpt rather than openpty(3), which cannot make them
 * close-on-exec atomically (and needs libutil on older C libraries). */
static bool
s_pty(int p[2])
{
    char name[64];
    p[0] = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    p[1] = -1;
    if (p[0] >= 0 && grantpt(p[0]) == 0 && unlockpt(p[0]) == 0 &&
        ptsname_r(p[0], name, sizeof name) == 0)
        p[1] = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (p[1] >= 0 && s_high(&p[0]) && s_high(&p[1]))
        return true;
    s_close(&p[0]);
    s_close(&p[1]);
    return false;
}

/* True when the environment entry ENTRY has a name one of EXTRA sets. */
static bool
s_env_replaced(const char *entry, const char *const *extra)
{
    size_t len = strcspn(entry, "=");
    for (; *extra; extra++)
        if (strcspn(*extra, "=") == len && strncmp(*extra, entry, len) == 0)
            return true;
    return false;
}

/* environ less what EXTRA replaces, plus EXTRA. Only the array is new
 * (free it); the strings are borrowed. */
static char **
s_env_with(const char *const *extra)
{
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    while (extra[m])
        m++;
    char **env = pm_calloc(n + m + 1, sizeof *env);
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
        if (!s_env_replaced(environ[i], extra))
            env[j++] = environ[i];
    for (size_t i = 0; i < m; i++)
        env[j++] = (char *)extra[i];
    return env;
}

/* s_spawn's ERR_W for /dev/null. */
#define S_ERR_NULL (-2)

/* Starts ARGV with IN_R (-1: /dev/null), OUT_W and ERR_W (-1: ours;
 * S_ERR_NULL: /dev/null) as fds 0-2 and no other descriptor, in a session
 * and process group of its own (so one kill reaches all of it: a child in
 * our session could move itself into our group with setpgid(2) and out
 * of reach, and our terminal, if any, is not its to use), every signal
 * default and none blocked. Returns 0, or an errno. */
static int
s_spawn(char *const argv[], char **env, int in_r, int out_w, int err_w,
        pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    if (in_r < 0)
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    else
        posix_spawn_file_actions_adddup2(&fa, in_r, 0);
    posix_spawn_file_actions_adddup2(&fa, out_w, 1);
    if (err_w >= 0)
        posix_spawn_file_actions_adddup2(&fa, err_w, 2);
    else if (err_w == S_ERR_NULL)
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETSIGMASK);
    int err = posix_spawnp(pid, argv[0], &fa, &attr, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return err;
}

/* Makes the capture descriptors and starts the child. False with J->fail
 * when it did not start. */
static bool
s_start(s_job_t *j, char *const argv[], const pm_cmd_opts_t *o)
{
    int out[2] = {-1, -1}, err[2] = {-1, -1};
    if (!s_pipe(out) || (!(o->pty_stderr && s_pty(err)) && !s_pipe(err))) {
        j->fail = pm_asprintf("pipe: %s", strerror(errno));
        s_close(&out[0]);
        s_close(&out[1]);
        return false;
    }
    char **env = o->env ? s_env_with(o->env) : environ;
    int rc = s_spawn(argv, env, -1, out[1], err[1], &j->pid);
    if (env != environ)
        free(env);
    s_close(&out[1]);
    s_close(&err[1]);
    j->sink[0].fd = out[0];
    j->sink[1].fd = err[0];
    if (rc != 0) {
        j->pid = -1;
        j->fail = pm_asprintf("%s: %s", argv[0], strerror(rc));
        return false;
    }
    return true;
}

/* Reads what S's descriptor has, closing it at its end. Never allocates
 * much past MAX: false as soon as the stream went past it. */
static bool
s_sink_read(s_sink_t *s, size_t max)
{
    size_t room = max - s->len; /* s->len <= max while reading */
    size_t want = room < S_CHUNK ? room + 1 : S_CHUNK;
    size_t need = s->len + want + 1;
    if (need > s->cap) {
        size_t cap = s->cap * 2 > need ? s->cap * 2 : need;
        if (cap - 2 > max) /* need <= max + 2 */
            cap = max + 2;
        s->buf = pm_realloc(s->buf, cap);
        s->cap = cap;
    }
    s->buf[s->len] = '\0';
    ssize_t r = read(s->fd, s->buf + s->len, want);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (r <= 0) { /* EOF, or EIO once the terminal's last writer closed */
        s_close(&s->fd);
        return true;
    }
    s->len += (size_t)r;
    s->buf[s->len] = '\0';
    return s->len <= max;
}

/* Waits up to WAIT_MS for output and reads what came. False, with
 * J->fail, when a stream went past the cap. */
static bool
s_pump(s_job_t *j, int wait_ms)
{
    struct pollfd pfd[2];
    int which[2];
    nfds_t n = 0;
    for (int i = 0; i < 2; i++)
        if (j->sink[i].fd >= 0) {
            pfd[n] = (struct pollfd){j->sink[i].fd, POLLIN, 0};
            which[n++] = i;
        }
    if (n == 0) { /* both closed: only the exit is awaited */
        usleep(wait_ms < 5 ? (useconds_t)wait_ms * 1000 : 5000);
        return true;
    }
    if (poll(pfd, n, wait_ms) <= 0)
        return true;
    for (nfds_t k = 0; k < n; k++)
        if (pfd[k].revents && !s_sink_read(&j->sink[which[k]], j->max)) {
            s_fail(j, pm_asprintf("wrote more than %zu bytes to %s", j->max,
                                  which[k] ? "stderr" : "stdout"));
            return false;
        }
    return true;
}

/* Reaps the child if it has exited. */
static void
s_try_reap(s_job_t *j)
{
    pid_t r = waitpid(j->pid, &j->wstatus, WNOHANG);
    if (r == j->pid) {
        j->reaped = true;
    } else if (r < 0 && errno != EINTR) { /* someone else reaped it */
        j->reaped = true;
        s_fail(j, pm_asprintf("waitpid: %s", strerror(errno)));
    }
}

/* True once the child has exited, without reaping it: while it is an
 * unreaped zombie its process group id cannot be reused, so signalling the
 * group cannot reach a stranger. */
static bool
s_exited(const s_job_t *j)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    return waitid(P_PID, (id_t)j->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           si.si_pid == j->pid;
}

/* Sends SIG to the child's process group and to the child itself (it
 * leads its session and cannot leave its group, but a kill of the group
 * alone must never leave a blocking waitpid waiting on it). The child
 * is not reaped yet: its id is still its own. */
static void
s_signal(pid_t pid, int sig)
{
    kill(-pid, sig);
    kill(pid, sig);
}

/* Kills what is left of the child's process group and reaps the child. */
static void
s_kill_reap(s_job_t *j)
{
    s_signal(j->pid, SIGKILL);
    while (waitpid(j->pid, &j->wstatus, 0) < 0 && errno == EINTR)
        ;
    j->reaped = true;
}

/* Asks the caller whether to stop, at most every S_ASK_MS; a yes sends
 * the group SIGTERM (s_collect sends SIGKILL S_GRACE_MS later). */
static void
s_ask(s_job_t *j, const pm_cmd_opts_t *o, long now, long *next_ask)
{
    if (j->term_at || !o->cancelled || now < *next_ask)
        return;
    *next_ask = now + S_ASK_MS;
    if (o->cancelled(o->cancel_arg)) {
        s_signal(j->pid, SIGTERM);
        j->term_at = now > 0 ? now : 1;
        s_fail(j, pm_strdup("stopped"));
    }
}

static char *
s_timed_out(int timeout_ms)
{
    if (timeout_ms % 1000 == 0)
        return pm_asprintf("timed out after %d s", timeout_ms / 1000);
    return pm_asprintf("timed out after %d ms", timeout_ms);
}

/* Reads both streams until they close and the child exits; kills the
 * child's process group at the deadline, past the output cap, or when the
 * caller cancels. */
static void
s_collect(s_job_t *j, const pm_cmd_opts_t *o, int timeout_ms)
{
    long now = pm_clock_ms(), deadline = now + timeout_ms, next_ask = now;
    while (!j->reaped) {
        if (now >= deadline) {
            s_fail(j, s_timed_out(timeout_ms));
            break;
        }
        if (j->term_at && (now - j->term_at >= S_GRACE_MS || s_exited(j)))
            break;
        s_ask(j, o, now, &next_ask);
        long left = deadline - now;
        if (!s_pump(j, left < S_ASK_MS ? (int)left : S_ASK_MS))
            break;
        if (!j->term_at)
            s_try_reap(j);
        now = pm_clock_ms();
    }
    if (!j->reaped) {
        s_kill_reap(j);
        return;
    }
    /* exited: what is left in the pipes, unless a grandchild holds them */
    long until = now + S_GRACE_MS < deadline ? now + S_GRACE_MS : deadline;
    while ((j->sink[0].fd >= 0 || j->sink[1].fd >= 0) && now < until) {
        long left = until - now;
        if (!s_pump(j, left < 200 ? (int)left : 200))
            break;
        now = pm_clock_ms();
    }
}

/* Hands the job's outputs and outcome over to RES. */
static void
s_finish(s_job_t *j, pm_cmd_result_t *res)
{
    for (int i = 0; i < 2; i++)
        s_close(&j->sink[i].fd);
    res->out = j->sink[0].buf ? j->sink[0].buf : pm_strdup("");
    res->out_len = j->sink[0].len;
    res->err = j->sink[1].buf ? j->sink[1].buf : pm_strdup("");
    size_t w = 0; /* a terminal writes "\r\n" */
    for (size_t r = 0; r < j->sink[1].len; r++)
        if (res->err[r] != '\r')
            res->err[w++] = res->err[r];
    res->err[w] = '\0';
    if (!j->fail && !WIFEXITED(j->wstatus))
        j->fail = pm_asprintf("killed by signal %d", WTERMSIG(j->wstatus));
    res->fail = j->fail;
    res->status = j->fail ? -1 : WEXITSTATUS(j->wstatus);
}

int
pm_cmd_run(char *const argv[], const pm_cmd_opts_t *opts, pm_cmd_result_t *res)
{
    static const pm_cmd_opts_t defaults;
    const pm_cmd_opts_t *o = opts ? opts : &defaults;
    s_job_t j = {.pid = -1,
                 .sink = {{.fd = -1}, {.fd = -1}},
                 .max = o->max_output ? o->max_output : S_MAX_OUTPUT};
    if (!argv || !argv[0])
        j.fail = pm_strdup("no command");
    else if (s_start(&j, argv, o))
        s_collect(&j, o, o->timeout_ms > 0 ? o->timeout_ms : S_TIMEOUT_MS);
    memset(res, 0, sizeof *res);
    s_finish(&j, res);
    return res->status;
}

void
pm_cmd_result_clear(pm_cmd_result_t *res)
{
    PM_FREE(&res->out);
    PM_FREE(&res->err);
    PM_FREE(&res->fail);
    res->out_len = 0;
    res->status = -1;
}

/* The first non-empty line of TEXT: where it starts, and its length (at
 * most S_LINE_MAX) in *LEN. */
static const char *
s_first_line(const char *text, int *len)
{
    text += strspn(text, "\n ");
    size_t n = strcspn(text, "\n");
    *len = n < S_LINE_MAX ? (int)n : S_LINE_MAX;
    return text;
}

char *
pm_cmd_why(const char *what, const pm_cmd_result_t *res)
{
    if (res->status < 0)
        return pm_asprintf("%s: %s", what, res->fail ? res->fail : "failed");
    int len;
    const char *line = s_first_line(res->err ? res->err : "", &len);
    if (len == 0)
        line = s_first_line(res->out ? res->out : "", &len);
    return pm_asprintf("%s: exit %d%s%.*s", what, res->status, len ? ": " : "",
                       len, line);
}

int
pm_cmd_start(char *const argv[], bool quiet, pm_cmd_child_t *child, char **why)
{
    int sv[2];
    child->pid = -1;
    child->fd = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 ||
        !s_high(&sv[0]) || !s_high(&sv[1])) {
        if (why)
            *why = pm_asprintf("socketpair: %s", strerror(errno));
        return -1;
    }
    int rc = s_spawn(argv, environ, sv[1], sv[1], quiet ? S_ERR_NULL : -1,
                     &child->pid);
    s_close(&sv[1]);
    if (rc != 0) {
        s_close(&sv[0]);
        child->pid = -1;
        if (why)
            *why = pm_asprintf("%s: %s", argv[0], strerror(rc));
        return -1;
    }
    child->fd = sv[0];
    return 0;
}

void
pm_cmd_stop(pm_cmd_child_t *child)
{
    if (child->fd >= 0)
        s_close(&child->fd); /* its stdin ends: a well-behaved child exits */
    if (child->pid <= 0)
        return;
    int status;
    long deadline = pm_clock_ms() + S_GRACE_MS;
    while (waitpid(child->pid, &status, WNOHANG) == 0) {
        if (pm_clock_ms() >= deadline) {
            s_signal(child->pid, SIGKILL);
            while (waitpid(child->pid, &status, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        usleep(10000);
    }
    /* what it left in its group (a helper taken over may fork and
     * exit): the group's id is not reused while the group lives */
    kill(-child->pid, SIGKILL);
    child->pid = -1;
}
