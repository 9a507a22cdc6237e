/*
 * The Logs page: maillog_file, filtered by queue ID and by text. The
 * browser polls with "after" (the offset it has read up to) and gets
 * only the new lines, so the page refreshes itself cheaply.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin.h"
#include "admin/api.h"
#include "admin/text.h"
#include "common/config.h"
#include "common/util.h"
#include "queue/spool.h"

#define LOG_WINDOW (2U << 20) /* the most bytes read per request */
#define LOG_DEFAULT_LINES 200
#define LOG_MAX_LINES 5000
#define LOG_MAX_QUERY 200

static bool
line_matches(const char *line, size_t len, const char *qid, const char *q)
{
	if (qid != NULL && memmem(line, len, qid, strlen(qid)) == NULL)
		return false;
	return q == NULL || *q == '\0' || text_contains_ci(line, len, q);
}

static int
query_number(struct api_req *r, const char *name, long long min, long long max,
    long long *out, json_t *errors)
{
	const char *s = api_query(r, name);

	if (s == NULL)
		return 0;
	if (parse_ll(s, min, max, out) == -1) {
		errors_set(errors, name, "must be a number from %lld to %lld",
		    min, max);
		return -1;
	}
	return 0;
}

void
api_logs(struct api_req *r)
{
	const char *path = cfg_str(r->a->cfg, P_MAILLOG_FILE);
	const char *qid = api_query(r, "qid"), *q = api_query(r, "q");
	json_t *errors = json_object(), *lines;
	long long want = LOG_DEFAULT_LINES, after = -1;
	off_t size, start;
	char *buf;
	ssize_t got;
	size_t len, pos, first, end;
	int fd;

	if (qid != NULL && *qid == '\0')
		qid = NULL;
	if (qid != NULL && !spool_qid_valid(qid))
		errors_set(errors, "qid", "is not a queue ID");
	if (q != NULL && strlen(q) > LOG_MAX_QUERY)
		errors_set(errors, "q", "must be at most %d characters",
		    LOG_MAX_QUERY);
	query_number(r, "lines", 1, LOG_MAX_LINES, &want, errors);
	query_number(r, "after", 0, (1LL << 62), &after, errors);
	if (json_object_size(errors) > 0) {
		api_field_errors(r, errors);
		return;
	}
	json_decref(errors);
	if (*path == '\0') {
		api_error(r, 409, "maillog_file is not set");
		return;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		api_error(r, 500, "%s: %s", path, strerror(errno));
		return;
	}
	size = lseek(fd, 0, SEEK_END);
	/* A log shorter than the offset was rotated: read it afresh. */
	if (after >= 0 && after <= size)
		start = after;
	else
		start = size > (off_t)LOG_WINDOW ? size - (off_t)LOG_WINDOW : 0;
	if (size - start > (off_t)LOG_WINDOW)
		start = size - (off_t)LOG_WINDOW;
	len = (size_t)(size - start);
	buf = xmalloc(len + 1);
	got = pread(fd, buf, len, start);
	close(fd);
	if (got < 0) {
		free(buf);
		api_error(r, 500, "%s: %s", path, strerror(errno));
		return;
	}
	len = (size_t)got;
	/* Whole lines only: one that is still being written waits. */
	end = len;
	while (end > 0 && buf[end - 1] != '\n')
		end--;
	/* A window that starts mid-line drops that partial line. */
	pos = 0;
	if (start > 0 && start != after) {
		char *nl = memchr(buf, '\n', end);
		pos = nl != NULL ? (size_t)(nl - buf) + 1 : end;
	}
	lines = json_array();
	for (first = pos; pos < end; pos++) {
		if (buf[pos] != '\n')
			continue;
		if (line_matches(buf + first, pos - first, qid, q))
			json_array_append_new(
			    lines, text_json(buf + first, pos - first));
		first = pos + 1;
	}
	free(buf);
	while (json_array_size(lines) > (size_t)want)
		json_array_remove(lines, 0);
	api_json(r, 200,
	    json_pack("{s:o,s:I,s:s}", "lines", lines, "offset",
		(json_int_t)(start + (off_t)end), "file", path));
}
