/* pm_archive.h - the entry names of an archive held in memory, with
 * libarchive, nested archives included, under limits.
 *
 * Formats: zip, tar (plain or compressed with gzip, bzip2 or xz), 7z, rar
 * and rar5. libarchive recognises the format from the content, so an
 * archive is found whatever its name. A bare compressed file (a ".gz" of
 * one document) is not an archive: it has no entry names.
 *
 * Every entry's data is read (that is how nested archives are found, and
 * how a format that must decompress to skip an entry is kept within the
 * byte limit). An entry is kept in memory only when libarchive recognises
 * its first 64 KiB as an archive; memory stays below the byte limit plus
 * libarchive's own state.
 *
 * Thread-safe: no state outside the arguments.
 */
#ifndef PM_ARCHIVE_H
#define PM_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    unsigned max_depth;       /* the archive given is level 1 */
    size_t max_entries;       /* in one archive */
    size_t max_total_entries; /* counted in *use */
    uint64_t max_bytes;       /* decompressed data, counted in *use */
} pm_archive_limits_t;

/* What the archives of one message used so far; start from zeroes. */
typedef struct {
    size_t entries;
    uint64_t bytes;
} pm_archive_usage_t;

/* Called with each entry's path name as the archive stores it (not
 * necessarily UTF-8); directories are not reported. Returns true to stop
 * the listing. */
typedef bool (*pm_archive_name_fn)(void *arg, const char *name);

typedef enum {
    PM_ARCHIVE_NONE = 0, /* not an archive libarchive recognises */
    PM_ARCHIVE_LISTED,   /* every name, at every level, was reported */
    PM_ARCHIVE_STOPPED,  /* FN asked to stop */
    PM_ARCHIVE_LIMIT,    /* a limit was reached: *why says which */
    PM_ARCHIVE_BROKEN,   /* recognised but not listable to the end (corrupt,
                            truncated, names encrypted): *why says why */
} pm_archive_result_t;

/* Reports to FN the names in the archive DATA of LEN bytes and in the
 * archives nested in it. Names are given in the locale's charset
 * (LC_CTYPE), which must be UTF-8 for names outside ASCII to be read
 * (privmta-milter sets C.UTF-8); an entry whose name cannot be read makes
 * the archive PM_ARCHIVE_BROKEN, never a pass. Names met before a limit or an error are
 * reported. Entries whose data is encrypted are reported by name and not
 * opened. For PM_ARCHIVE_LIMIT and PM_ARCHIVE_BROKEN, *why (WHY may be
 * NULL) gets a new sentence the caller frees ("archive nesting deeper than
 * 4 levels"); otherwise it is left alone. */
pm_archive_result_t pm_archive_list(const void *data, size_t len,
                                    const pm_archive_limits_t *lim,
                                    pm_archive_usage_t *use,
                                    pm_archive_name_fn fn, void *arg,
                                    char **why);

#endif
