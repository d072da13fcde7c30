/* test_file.c - pm_file: bounded reads that never block or follow a
 * planted link, and writes that replace a file atomically without ever
 * opening what a less privileged user put in the directory. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "pm_error.h"
#include "pm_file.h"
#include "pm_mem.h"

static char s_dir[64];

static void
s_setup(void)
{
    strcpy(s_dir, "/tmp/pm-test-file.XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
}

static void
s_teardown(void)
{
    char *cmd = pm_asprintf("rm -rf %s", s_dir);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
}

static char *
s_path(const char *name)
{
    return pm_asprintf("%s/%s", s_dir, name);
}

static void
s_put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static int
s_count_entries(void)
{
    DIR *d = opendir(s_dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.' || strstr(e->d_name, ".tmp") != NULL;
    closedir(d);
    return n;
}

TestSuite(file, .init = s_setup, .fini = s_teardown);

Test(file, reads_whole_file_nul_terminated)
{
    char *p = s_path("a"), *data = NULL, *why = NULL;
    size_t len = 0;
    s_put(p, "hello\n");
    cr_assert_eq(pm_file_read(p, 100, 0, &data, &len, &why), PM_OK);
    cr_expect_eq(len, 6);
    cr_expect_str_eq(data, "hello\n");
    free(data);
    free(p);
}

Test(file, over_the_cap_is_refused_with_sizes)
{
    char *p = s_path("big"), *data = NULL, *why = NULL;
    s_put(p, "0123456789");
    cr_assert_eq(pm_file_read(p, 9, 0, &data, NULL, &why), PM_EINVAL);
    cr_expect_null(data);
    cr_expect(strstr(why, "10 bytes") && strstr(why, "9 allowed"), "%s", why);
    free(why);
    why = NULL;
    cr_assert_eq(pm_file_read(p, 10, 0, &data, NULL, &why), PM_OK);
    free(data);
    free(p);
}

Test(file, missing_file_is_not_found)
{
    char *p = s_path("none"), *data = NULL, *why = NULL;
    cr_expect_eq(pm_file_read(p, 10, 0, &data, NULL, &why), PM_ENOTFOUND);
    cr_expect(strstr(why, p) != NULL);
    free(why);
    free(p);
}

/* A FIFO with no writer would block open() or read() forever. */
Test(file, fifo_is_refused_without_blocking)
{
    char *p = s_path("fifo"), *data = NULL, *why = NULL;
    cr_assert_eq(mkfifo(p, 0600), 0);
    cr_expect_eq(pm_file_read(p, 10, PM_FILE_STRICT, &data, NULL, &why),
                 PM_EINVAL);
    cr_expect(strstr(why, "not a regular file") != NULL, "%s", why);
    free(why);
    free(p);
}

Test(file, strict_refuses_symlink_and_hard_link)
{
    char *p = s_path("real"), *l = s_path("link"), *h = s_path("hard");
    char *data = NULL, *why = NULL;
    s_put(p, "secret");
    cr_assert_eq(symlink(p, l), 0);
    cr_assert_eq(link(p, h), 0);
    cr_expect_eq(pm_file_read(l, 100, PM_FILE_STRICT, &data, NULL, &why),
                 PM_EINVAL);
    cr_expect(strstr(why, "symbolic link") != NULL, "%s", why);
    cr_expect_eq(pm_file_read(h, 100, PM_FILE_STRICT, &data, NULL, &why),
                 PM_EINVAL);
    cr_expect(strstr(why, "hard links") != NULL, "%s", why);
    /* not strict: an admin's symlinked file is fine */
    cr_expect_eq(pm_file_read(l, 100, 0, &data, NULL, &why), PM_OK);
    free(data);
    free(why);
    free(p);
    free(l);
    free(h);
}

Test(file, no_holes_refuses_a_sparse_file_and_reads_a_dense_one)
{
    char *sparse = s_path("sparse"), *dense = s_path("dense");
    char *data = NULL, *why = NULL;
    int fd = open(sparse, O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, 4 << 20), 0); /* 4 MiB of no disk */
    cr_assert_eq(pwrite(fd, "end", 3, 4 << 20), 3);
    close(fd);
    fd = open(sparse, O_RDONLY);
    off_t hole = lseek(fd, 0, SEEK_HOLE);
    close(fd);
    if (hole < 0 || hole >= (4 << 20))
        cr_skip_test("this file system does not report holes");
    cr_expect_eq(
        pm_file_read(sparse, 8 << 20, PM_FILE_NO_HOLES, &data, NULL, &why),
        PM_EINVAL);
    cr_expect(why && strstr(why, "holes"), "%s", why ? why : "");
    cr_expect_null(data);
    /* without the flag it is read as it is; a dense file with it too,
     * from its first byte (the look for holes moves the offset) */
    size_t len = 0;
    cr_expect_eq(pm_file_read(sparse, 8 << 20, 0, &data, &len, &why), PM_OK);
    cr_expect_eq(len, (4 << 20) + 3);
    free(data);
    s_put(dense, "dense text");
    cr_expect_eq(pm_file_read(dense, 100, PM_FILE_STRICT | PM_FILE_NO_HOLES,
                              &data, &len, &why),
                 PM_OK, "%s", why ? why : "");
    cr_expect_str_eq(data, "dense text");
    free(data);
    free(why);
    free(sparse);
    free(dense);
}

Test(file, write_replaces_with_mode_and_leaves_no_temp)
{
    char *p = s_path("out"), *data = NULL, *why = NULL;
    s_put(p, "old");
    cr_assert_eq(pm_file_write(p, "new", 3, 0640, (gid_t)-1, &why), PM_OK);
    struct stat st;
    cr_assert_eq(lstat(p, &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0640);
    cr_assert_eq(pm_file_read(p, 10, 0, &data, NULL, &why), PM_OK);
    cr_expect_str_eq(data, "new");
    cr_expect_eq(s_count_entries(), 1);
    free(data);
    free(p);
}

Test(file, write_sets_group)
{
    char *p = s_path("grp"), *why = NULL;
    gid_t g = getuid() == 0 ? 65534 : getgid();
    cr_assert_eq(pm_file_write(p, "x", 1, 0640, g, &why), PM_OK, "%s", why);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_expect_eq(st.st_gid, g);
    cr_expect_eq(st.st_uid, getuid()); /* never given away */
    free(p);
}

/* The attack from the review: a link planted where the file goes (or
 * where a predictable temporary name would be) must not be written
 * through. The link itself is replaced; its target is untouched. */
Test(file, write_never_follows_a_planted_link)
{
    char *victim = s_path("victim"), *p = s_path("key.pem");
    char *tmp = s_path("key.pem.tmp"), *data = NULL, *why = NULL;
    s_put(victim, "precious");
    cr_assert_eq(symlink(victim, p), 0);
    cr_assert_eq(symlink(victim, tmp), 0);
    cr_assert_eq(pm_file_write(p, "KEY", 3, 0640, (gid_t)-1, &why), PM_OK);
    cr_assert_eq(pm_file_read(victim, 100, 0, &data, NULL, &why), PM_OK);
    cr_expect_str_eq(data, "precious");
    free(data);
    struct stat st;
    cr_assert_eq(lstat(p, &st), 0);
    cr_expect(S_ISREG(st.st_mode), "the link was replaced by a file");
    cr_expect_eq(st.st_mode & 07777, 0640);
    free(victim);
    free(p);
    free(tmp);
}

Test(file, write_into_missing_directory_fails_cleanly)
{
    char *p = s_path("no/such"), *why = NULL;
    cr_expect_eq(pm_file_write(p, "x", 1, 0600, (gid_t)-1, &why), PM_EIO);
    cr_expect(strstr(why, p) != NULL, "%s", why);
    free(why);
    free(p);
}

Test(file, mkdir_creates_and_repairs_mode)
{
    char *d = s_path("sub"), *why = NULL;
    cr_assert_eq(pm_file_mkdir(d, 0750, (gid_t)-1, &why), PM_OK);
    struct stat st;
    cr_assert_eq(stat(d, &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0750);
    cr_assert_eq(chmod(d, 0777), 0);
    cr_assert_eq(pm_file_mkdir(d, 0750, (gid_t)-1, &why), PM_OK);
    cr_assert_eq(stat(d, &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0750);
    free(d);
}

Test(file, mkdir_refuses_a_link_or_a_file)
{
    char *real = s_path("real"), *l = s_path("l"), *f = s_path("f");
    char *why = NULL;
    cr_assert_eq(mkdir(real, 0700), 0);
    cr_assert_eq(symlink(real, l), 0);
    s_put(f, "x");
    cr_expect_eq(pm_file_mkdir(l, 0750, (gid_t)-1, &why), PM_EINVAL);
    cr_expect(strstr(why, "symbolic link") != NULL, "%s", why);
    cr_expect_eq(pm_file_mkdir(f, 0750, (gid_t)-1, &why), PM_EINVAL);
    free(why);
    free(real);
    free(l);
    free(f);
}

/* A tree goes, or only its content; a link inside is removed, and what
 * it points to stays. */
Test(file, remove_tree_keeps_the_top_and_never_follows_a_link)
{
    char *top = s_path("top"), *sub = s_path("top/a"), *f = s_path("top/a/f");
    char *outside = s_path("outside"), *kept = s_path("outside/kept");
    char *l = s_path("top/link"), *why = NULL;
    cr_assert_eq(mkdir(top, 0700), 0);
    cr_assert_eq(mkdir(sub, 0700), 0);
    cr_assert_eq(mkdir(outside, 0700), 0);
    s_put(f, "x");
    s_put(kept, "y");
    cr_assert_eq(symlink(outside, l), 0);
    cr_assert_eq(pm_file_remove_tree(top, true, &why), PM_OK, "%s", why);
    struct stat st;
    cr_expect_eq(stat(top, &st), 0, "the top stays");
    cr_expect_neq(lstat(sub, &st), 0, "its content goes");
    cr_expect_neq(lstat(l, &st), 0, "the link goes");
    cr_expect_eq(stat(kept, &st), 0, "what the link points to stays");
    cr_assert_eq(pm_file_remove_tree(top, false, &why), PM_OK, "%s", why);
    cr_expect_neq(lstat(top, &st), 0, "and now the top too");
    cr_expect_eq(pm_file_remove_tree(top, false, &why), PM_OK, "gone: fine");
    free(top);
    free(sub);
    free(f);
    free(outside);
    free(kept);
    free(l);
}

/* Positioned reads and writes of exact lengths: what is written at an
 * offset reads back there; a read past the end is refused, not short. */
Test(file, pread_and_pwrite_exact_lengths)
{
    char *path = s_path("chunks");
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    cr_assert(pm_file_pwrite_all(fd, "world", 5, 6));
    cr_assert(pm_file_pwrite_all(fd, "hello ", 6, 0));
    char buf[12] = {0};
    cr_assert(pm_file_pread_all(fd, buf, 11, 0));
    cr_expect_str_eq(buf, "hello world");
    cr_expect(pm_file_pread_all(fd, buf, 0, 11), "nothing to read");
    cr_expect_not(pm_file_pread_all(fd, buf, 2, 10), "one byte is left");
    close(fd);
    fd = open(path, O_RDONLY);
    cr_expect_not(pm_file_pwrite_all(fd, "x", 1, 0), "read-only");
    close(fd);
    free(path);
}
