/* testdir.c - see testdir.h. */
#define _XOPEN_SOURCE 700
#include "testdir.h"

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static int
s_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void
testdir_remove(const char *dir)
{
    nftw(dir, s_rm_one, 8, FTW_DEPTH | FTW_PHYS);
}
