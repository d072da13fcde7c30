/* pm_sandbox.h - what a process that parses hostile input may no longer
 * do once it is ready to.
 *
 * Base layer (no policy, no protocol). privmta-sigfetch --verify-server
 * hands files peers sent to libclamav, privmta-milter hands it mail. A
 * file that took either over should find a process that can do little
 * more than its job: after dropping root
 * (pm_priv), it installs a seccomp filter (libseccomp) that refuses, with
 * EPERM, starting a program or a process (execve, execveat, fork, vfork,
 * clone without CLONE_THREAD; clone3 answers ENOSYS, so that the C
 * library's threads fall back to clone), signalling or tracing another
 * process (kill and tgkill of another process, tkill, ptrace,
 * process_vm_readv/writev), and, unless PM_SANDBOX_NETWORK, opening a
 * socket other than AF_UNIX. So a verifier taken over cannot leave a
 * process behind, stop the next verifier, or reach the network; a milter
 * (which needs spamd, DNS and SMTP) cannot leave a process behind that
 * outlives it (the agent's policy test stops its filter by process
 * group), run a set-user-id program, or touch another process. A system call of
 * another ABI (i386, x32) ends the process. no_new_privs is set first (the
 * kernel asks it of an unprivileged filter).
 */
#ifndef PM_SANDBOX_H
#define PM_SANDBOX_H

/* FLAGS: network sockets stay allowed. */
#define PM_SANDBOX_NETWORK 1u

/* Installs the filter on this process, as FLAGS say: on every thread of
 * it (those started before too, with the kernel's TSYNC, which needs
 * seccomp(2): a caller under a systemd SystemCallFilter installs it
 * before starting any thread, and prctl(2) does). PM_OK;
 * PM_EINTERNAL with *WHY when the kernel or libseccomp refuses: the
 * caller stops, rather than parse without it. */
int pm_sandbox_no_spawn(unsigned flags, char **why);

#endif
