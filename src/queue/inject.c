#include <errno.h>
#include <stdlib.h>

#include "common/util.h"
#include "queue/commit.h"
#include "queue/inject.h"
#include "queue/spool.h"

struct inject {
	inject_done_fn done;
	void *arg;
};

struct spool_writer *
inject_begin(struct spool *sp)
{
	struct spool_writer *w;

	if (spool_writer_create(sp, &w) == -1)
		return NULL;
	return w;
}

static void
inject_commit_cb(int error, struct spool_writer *w, void *arg)
{
	struct inject *in = arg;

	in->done(error, w->qid, in->arg);
	free(in);
}

int
inject_commit(struct committer *c, struct spool_writer *w,
    struct spool_env *env, inject_done_fn done, void *arg)
{
	struct inject *in;

	if (spool_writer_finish(w, env) == -1) {
		int e = errno;
		spool_writer_free(&w);
		errno = e;
		return -1;
	}
	in = xcalloc(1, sizeof(*in));
	in->done = done;
	in->arg = arg;
	committer_submit(c, w, inject_commit_cb, in);
	return 0;
}
