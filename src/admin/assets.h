/* The console's HTML, CSS and JS, embedded at build time (embed-assets.py). */
#ifndef MAILSEAL_ASSETS_H
#define MAILSEAL_ASSETS_H

#include <stddef.h>

struct asset {
	const char *path; /* "/index.html", "/app.js", ... */
	const char *ctype;
	const unsigned char *data;
	size_t len;
	const char *etag;
};

extern const struct asset admin_assets[];
extern const size_t admin_nassets;

/* The asset of a request path ("/" is "/index.html"), or NULL. */
const struct asset *asset_find(const char *path);

#endif
