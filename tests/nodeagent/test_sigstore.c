/* test_sigstore.c - how a new ClamAV database gets into the node's
 * directory: the unprivileged fetch user's own directory, what the agent
 * takes back from it (only a regular file, newer, that passes ClamAV's
 * check, as a copy of its own), and the verifier running as that user.
 * The ownership checks need root (CI runs as root); elsewhere they skip. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"
#include "pm_sigfetch.h"
#include "pm_sigcdiff.h"
#include "pm_sigstore.h"
#include "pm_sigverify.h"
#include "testmirror.h"
#include "testdir.h"

#define S_HELPER PM_BUILD_DIR "/nodeagent/privmta-sigfetch"
#define S_USER "nobody"
#define S_MS 60000

static char s_dir[64], s_db[96], s_fetch[128];
static uid_t s_uid;
static gid_t s_gid;
static pm_sigverify_t *s_verifier;
static const char *const s_test[] = {"test"};

static void
s_setup(void)
{
    strcpy(s_dir, "/tmp/pm-test-sigstore.XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    cr_assert_eq(chmod(s_dir, 0755), 0); /* the fetch user passes through */
    snprintf(s_db, sizeof s_db, "%s/db", s_dir);
    snprintf(s_fetch, sizeof s_fetch, "%s/%s", s_db, PM_SIGSTORE_FETCH);
    cr_assert_eq(pm_file_mkdir(s_db, 0751, (gid_t)-1, NULL), PM_OK);
    struct passwd *pw = getpwnam(S_USER);
    cr_assert_not_null(pw, "user " S_USER " is needed");
    s_uid = geteuid() == 0 ? pw->pw_uid : geteuid();
    s_gid = geteuid() == 0 ? pw->pw_gid : getegid();
    s_verifier = pm_sigverify_new(S_HELPER, S_USER);
}

static void
s_teardown(void)
{
    pm_sigverify_destroy(&s_verifier);
    testdir_remove(s_dir);
}

TestSuite(sigstore, .init = s_setup, .fini = s_teardown);

static void
s_need_root(void)
{
    if (geteuid() != 0) { /* cr_skip_test skips .fini: clean up first */
        s_teardown();
        cr_skip_test("needs root: files owned by another user");
    }
}

static struct stat
s_lstat(const char *dir, const char *name)
{
    char *path = pm_asprintf("%s/%s", dir, name);
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0, "%s: %s", path, strerror(errno));
    free(path);
    return st;
}

static bool
s_exists(const char *dir, const char *name)
{
    char *path = pm_asprintf("%s/%s", dir, name);
    struct stat st;
    bool ok = lstat(path, &st) == 0;
    free(path);
    return ok;
}

/* The version DBDIR's test.cvd/.cld verifies as (0: none). */
static unsigned
s_db_version(void)
{
    for (int i = 0; i < 2; i++) {
        char *path = pm_asprintf("%s/test.%s", s_db, i ? "cvd" : "cld");
        unsigned v = 0;
        bool there = access(path, F_OK) == 0;
        if (there)
            cr_assert_eq(pm_sigfetch_verify(path, "test", &v, NULL, NULL, NULL),
                         PM_OK);
        free(path);
        if (there)
            return v;
    }
    return 0;
}

/* DBDIR holds test version 1, staged for the fetch user. */
static void
s_staged_v1(void)
{
    testmirror_copy("test-1.cvd", s_db, "test.cvd", false);
    cr_assert_eq(pm_sigstore_stage(s_db, s_uid, s_gid, s_test, 1, NULL), PM_OK);
}

/* What a fetch leaves: the fetch directory's test.cvd replaced by FIXTURE
 * (as libfreshclam renames its result over the link). */
static void
s_fetched(const char *fixture, bool tamper)
{
    char *path = pm_asprintf("%s/test.cvd", s_fetch);
    unlink(path);
    testmirror_copy(fixture, s_fetch, "test.cvd", tamper);
    free(path);
}

Test(sigstore, stage_gives_the_fetch_user_a_directory_of_links)
{
    s_need_root();
    s_staged_v1();
    struct stat dir = s_lstat(s_db, PM_SIGSTORE_FETCH);
    cr_assert(S_ISDIR(dir.st_mode));
    cr_assert_eq(dir.st_uid, s_uid, "owned by the fetch user");
    cr_assert_eq(dir.st_mode & 07777, 0700);
    struct stat link = s_lstat(s_fetch, "test.cvd");
    struct stat orig = s_lstat(s_db, "test.cvd");
    cr_assert_eq(link.st_ino, orig.st_ino, "the file DBDIR holds, linked");
    cr_assert_eq(orig.st_uid, 0, "and still root's");
    cr_assert_eq(s_lstat(s_dir, "db").st_mode & 07777, 0751);
}

Test(sigstore, stage_removes_what_the_fetch_user_left_without_following_it)
{
    s_need_root();
    char *victim = pm_asprintf("%s/victim", s_dir);
    cr_assert_eq(pm_file_write(victim, "keep", 4, 0644, (gid_t)-1, NULL),
                 PM_OK);
    s_staged_v1();
    char *evil = pm_asprintf("%s/test.cld", s_fetch);
    char *fifo = pm_asprintf("%s/daily.cvd", s_fetch);
    cr_assert_eq(symlink(victim, evil), 0);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    cr_assert_eq(pm_sigstore_stage(s_db, s_uid, s_gid, s_test, 1, NULL), PM_OK);
    cr_assert_not(s_exists(s_fetch, "test.cld"), "the link is gone");
    cr_assert_not(s_exists(s_fetch, "daily.cvd"), "the FIFO is gone");
    char *data = NULL;
    cr_assert_eq(pm_file_read(victim, 64, 0, &data, NULL, NULL), PM_OK);
    cr_assert_str_eq(data, "keep", "what the link pointed at is untouched");
    free(data);
    free(evil);
    free(fifo);
    free(victim);
}

Test(sigstore, take_installs_a_newer_checked_copy)
{
    s_staged_v1();
    s_fetched("test-6.cvd", false);
    pm_sigfile_t got = {0};
    char *why = NULL;
    cr_assert_eq(
        pm_sigstore_take(s_db, "test", 1, s_verifier, S_MS, &got, &why), PM_OK,
        "%s", why ? why : "");
    cr_assert_eq(got.version, 6);
    cr_assert_gt(got.sigs, 0);
    cr_assert_eq(s_db_version(), 6);
    cr_assert_eq(s_lstat(s_db, "test.cvd").st_uid, geteuid(),
                 "a copy owned by the agent");
    cr_assert_not(s_exists(s_fetch, "test.cvd"), "their copy is removed");
    cr_assert_not(s_exists(s_db, PM_SIGSTORE_SCRATCH), "no scratch left");
    /* staged again, the new file is "nothing new" */
    cr_assert_eq(pm_sigstore_stage(s_db, s_uid, s_gid, s_test, 1, NULL), PM_OK);
    cr_assert_eq(
        pm_sigstore_take(s_db, "test", 6, s_verifier, S_MS, &got, NULL),
        PM_ENOTFOUND);
}

Test(sigstore, take_finds_nothing_new_when_the_fetch_changed_nothing)
{
    s_staged_v1();
    pm_sigfile_t got = {0};
    cr_assert_eq(
        pm_sigstore_take(s_db, "test", 1, s_verifier, S_MS, &got, NULL),
        PM_ENOTFOUND);
    cr_assert_eq(s_db_version(), 1);
}

Test(sigstore, take_refuses_a_link_a_fifo_a_rollback_and_a_tampered_file)
{
    s_staged_v1();
    char *outside = pm_asprintf("%s/outside", s_dir);
    cr_assert_eq(mkdir(outside, 0755), 0);
    testmirror_copy("test-6.cvd", outside, "test.cvd", false);
    char *target = pm_asprintf("%s/test.cvd", outside);
    char *cld = pm_asprintf("%s/test.cld", s_fetch);
    pm_sigfile_t got = {0};
    char *why = NULL;

    cr_assert_eq(symlink(target, cld), 0);
    cr_assert_eq(
        pm_sigstore_take(s_db, "test", 1, s_verifier, S_MS, &got, &why),
        PM_EPROTO, "a link is never followed");
    cr_assert(strstr(why, "symbolic link"), "%s", why);
    cr_assert_eq(unlink(cld), 0);

    cr_assert_eq(mkfifo(cld, 0600), 0); /* and the take does not block */
    cr_assert_eq(
        pm_sigstore_take(s_db, "test", 1, s_verifier, S_MS, &got, &why),
        PM_EPROTO, "a FIFO is not a database");
    cr_assert(strstr(why, "not a regular file"), "%s", why);
    cr_assert_eq(unlink(cld), 0);

    /* a hard link (to a file the fetch user may not read): before, it was
     * copied, made 0644 and handed to the verifier */
    cr_assert_eq(link(target, cld), 0);
    cr_assert_eq(
        pm_sigstore_take(s_db, "test", 1, s_verifier, S_MS, &got, &why),
        PM_EPROTO, "a file of two links is taken");
    cr_assert(strstr(why, "2 hard links"), "%s", why);
    cr_assert_eq(s_db_version(), 1);
    cr_assert_eq(unlink(cld), 0);

    /* a sparse file: no disk for the fetch user, its whole size for root
     * (up to 2 GiB a database a run) */
    int fd = open(cld, O_WRONLY | O_CREAT | O_EXCL, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, "end", 3, 8 << 20), 3);
    off_t hole = lseek(fd, 0, SEEK_HOLE);
    close(fd);
    if (hole >= 0 && hole < (8 << 20)) { /* the file system tells */
        cr_assert_eq(
            pm_sigstore_take(s_db, "test", 1, s_verifier, S_MS, &got, &why),
            PM_EPROTO, "a sparse file is copied");
        cr_assert(strstr(why, "holes"), "%s", why);
        cr_assert_eq(s_db_version(), 1);
    }
    cr_assert_eq(unlink(cld), 0);

    s_fetched("test-6.cvd", true);
    cr_assert_eq(
        pm_sigstore_take(s_db, "test", 1, s_verifier, S_MS, &got, &why),
        PM_EPROTO, "a tampered file fails ClamAV's check");
    cr_assert_eq(s_db_version(), 1, "the old version stays");

    s_fetched("test-1.cvd", false);
    cr_assert_eq(
        pm_sigstore_take(s_db, "test", 1, s_verifier, S_MS, &got, &why),
        PM_EPROTO, "a signed but not newer version is refused");
    cr_assert(strstr(why, "not newer than 1"), "%s", why);
    cr_assert_eq(s_db_version(), 1);
    cr_assert_not(s_exists(s_db, PM_SIGSTORE_SCRATCH), "no scratch left");
    free(why);
    free(cld);
    free(target);
    free(outside);
}

Test(sigstore, the_verifier_runs_as_the_fetch_user)
{
    s_need_root();
    /* a file only root can read: the verifier cannot open it */
    char *secret = pm_asprintf("%s/secret", s_dir);
    cr_assert_eq(mkdir(secret, 0700), 0);
    testmirror_copy("test-6.cvd", secret, "test.cvd", false);
    char *path = pm_asprintf("%s/test.cvd", secret);
    char *why = NULL;
    unsigned v = 0;
    cr_assert_eq(
        pm_sigverify_file(s_verifier, path, "test", S_MS, &v, NULL, NULL, &why),
        PM_EPROTO, "root's private file is out of its reach");
    /* the same bytes as a scratch copy it may read */
    char *tmp = NULL;
    int fd = -1, in = open(path, O_RDONLY);
    cr_assert_eq(pm_sigstore_scratch(s_db, "test.cvd", &tmp, &fd, NULL), PM_OK);
    char buf[4096];
    for (ssize_t n; (n = read(in, buf, sizeof buf)) > 0;)
        cr_assert_eq(write(fd, buf, (size_t)n), n);
    pm_sigfile_t got = {0};
    cr_assert_eq(
        pm_sigstore_check(s_verifier, fd, tmp, "test", S_MS, &got, &why), PM_OK,
        "%s", why ? why : "");
    cr_assert_eq(got.version, 6);
    close(fd);
    close(in);
    pm_sigstore_scratch_end(s_db, tmp);
    free(tmp);
    free(why);
    free(path);
    free(secret);
}

/* ---- kept CDIFFs (pm_sigcdiff) ----------------------------------------- */

static void
s_put(const char *dir, const char *name)
{
    char *path = pm_asprintf("%s/%s", dir, name);
    cr_assert_eq(pm_file_write(path, "x", 1, 0644, (gid_t)-1, NULL), PM_OK);
    free(path);
}

/* Only the CDIFFs of the chain kept are copied: the versions come from
 * what the fetch user's files claim, and before, a first fetch "from 0 to
 * 27000" copied every one it left (16 MiB each, as root) before pruning. */
Test(sigstore, cdiff_keep_copies_only_the_chain_kept)
{
    s_staged_v1();
    char *dir = NULL;
    cr_assert_eq(pm_sigcdiff_stage(s_db, true, s_uid, s_gid, &dir, NULL),
                 PM_OK);
    unsigned to = PM_SIGFETCH_CDIFF_STEPS + 10;
    for (unsigned v = 1; v <= to; v++) {
        char *name = pm_asprintf("test-%u.cdiff", v);
        s_put(dir, name);
        free(name);
    }
    cr_expect_eq(pm_sigcdiff_keep(s_db, true, "test", 0, to),
                 PM_SIGFETCH_CDIFF_STEPS);
    char *kept = pm_asprintf("%s/%s", s_db, PM_SIGCDIFF_KEPT);
    cr_expect_not(s_exists(kept, "test-10.cdiff"));
    cr_expect(s_exists(kept, "test-11.cdiff"));
    free(kept);
    free(dir);
}

/* The chain that ends at the version held is what counts; the rest goes. */
Test(sigstore, cdiff_from_is_the_chain_ending_at_the_version_held)
{
    char *kept = pm_asprintf("%s/%s", s_db, PM_SIGCDIFF_KEPT);
    cr_assert_eq(pm_sigcdiff_from(s_db, "test", 6), 0, "no directory: none");
    cr_assert_eq(mkdir(kept, 0700), 0);
    const char *files[] = {"test-2.cdiff", "test-4.cdiff", "test-5.cdiff",
                           "test-6.cdiff", "test-9.cdiff", "daily-5.cdiff",
                           "other"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        s_put(kept, files[i]);
    cr_assert_eq(pm_sigcdiff_from(s_db, "test", 6), 4);
    cr_assert_not(s_exists(kept, "test-2.cdiff"), "not in the chain");
    cr_assert_not(s_exists(kept, "test-9.cdiff"), "past the version");
    cr_assert(s_exists(kept, "test-4.cdiff"));
    cr_assert(s_exists(kept, "daily-5.cdiff"), "another database's stays");
    cr_assert(s_exists(kept, "other"));
    /* a whole file installed at 7 ends the chain */
    cr_assert_eq(pm_sigcdiff_from(s_db, "test", 7), 0);
    cr_assert_not(s_exists(kept, "test-6.cdiff"));
    /* at most PM_SIGFETCH_CDIFF_STEPS are kept */
    for (unsigned v = 1; v <= PM_SIGFETCH_CDIFF_STEPS + 5; v++) {
        char *name = pm_asprintf("test-%u.cdiff", v);
        s_put(kept, name);
        free(name);
    }
    cr_assert_eq(pm_sigcdiff_from(s_db, "test", PM_SIGFETCH_CDIFF_STEPS + 5),
                 6);
    cr_assert_not(s_exists(kept, "test-5.cdiff"));
    cr_assert_eq(pm_sigcdiff_from(s_db, "test", 0), 0, "0 forgets all");
    cr_assert_not(s_exists(kept, "test-35.cdiff"));
    free(kept);
}

/* What a fetch downloaded is kept from the fetch user's directory as a
 * copy of ours; a link there is not followed, and the chain stops. */
Test(sigstore, cdiff_keep_copies_regular_files_only)
{
    s_staged_v1();
    char *dir = NULL;
    cr_assert_eq(pm_sigcdiff_stage(s_db, true, s_uid, s_gid, &dir, NULL),
                 PM_OK);
    struct stat st = s_lstat(s_fetch, PM_SIGCDIFF_KEPT);
    cr_assert_eq(st.st_uid, s_uid);
    cr_assert_eq(st.st_mode & 0777, 0700);
    s_put(dir, "test-2.cdiff");
    char *sym = pm_asprintf("%s/test-3.cdiff", dir);
    cr_assert_eq(symlink("/etc/passwd", sym), 0);
    s_put(dir, "test-4.cdiff");
    cr_assert_eq(pm_sigcdiff_keep(s_db, true, "test", 1, 4), 1);
    char *kept = pm_asprintf("%s/%s", s_db, PM_SIGCDIFF_KEPT);
    cr_assert(s_exists(kept, "test-2.cdiff"));
    cr_assert_not(s_exists(kept, "test-3.cdiff"));
    cr_assert_not(s_exists(kept, "test-4.cdiff"), "the chain stops");
    st = s_lstat(kept, "test-2.cdiff");
    cr_assert_eq(st.st_uid, geteuid(), "ours, not the fetch user's");
    /* a hard link (to a file the fetch user could not read) is refused */
    char *other = pm_asprintf("%s/elsewhere", s_dir);
    cr_assert_eq(pm_file_write(other, "x", 1, 0600, (gid_t)-1, NULL), PM_OK);
    char *hard = pm_asprintf("%s/test-5.cdiff", dir);
    cr_assert_eq(link(other, hard), 0);
    cr_assert_eq(pm_sigcdiff_keep(s_db, true, "test", 4, 5), 0);
    cr_assert_not(s_exists(kept, "test-5.cdiff"));
    free(hard);
    free(other);
    /* staging again empties it, never following what is there */
    char *again = NULL;
    cr_assert_eq(pm_sigcdiff_stage(s_db, true, s_uid, s_gid, &again, NULL),
                 PM_OK);
    cr_assert_not(s_exists(dir, "test-3.cdiff"));
    cr_assert_eq(access("/etc/passwd", F_OK), 0);
    /* the inbox for a peer's CDIFFs is ours, 0755 */
    char *inbox = NULL;
    cr_assert_eq(pm_sigcdiff_stage(s_db, false, 0, 0, &inbox, NULL), PM_OK);
    st = s_lstat(s_db, PM_SIGCDIFF_INBOX);
    cr_assert_eq(st.st_uid, geteuid());
    cr_assert_eq(st.st_mode & 0777, 0755);
    free(inbox);
    free(again);
    free(kept);
    free(sym);
    free(dir);
}
