/* pm_web_assets.h - the page's files, embedded into privmta-web at build
 * time from web/static/ (web/embed.cmake), so the package ships them and
 * nothing is fetched from elsewhere at run time. */
#ifndef PM_WEB_ASSETS_H
#define PM_WEB_ASSETS_H

#include <stddef.h>

typedef struct {
    const char *path; /* "/app.js"; "/" is index.html */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t len;
} pm_web_asset_t;

/* The asset served at PATH, or NULL. */
const pm_web_asset_t *pm_web_asset(const char *path);

#endif
