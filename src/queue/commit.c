#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/util.h"
#include "queue/commit.h"

struct commit_job {
	struct commit_job *next;
	struct spool_writer *w;
	commit_cb cb;
	void *arg;
	int error;
};

struct committer {
	struct spool *sp;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct commit_job *todo, **todo_tail;
	struct commit_job *done, **done_tail;
	bool stop;
	int pipe[2];
	struct event *ev;
	struct commit_stats stats;
};

static void
commit_batch(struct committer *c, struct commit_job *batch)
{
	struct commit_job *j;
	bool any = false;

	/* Start write-back of every file, then wait for each. */
	for (j = batch; j != NULL; j = j->next) {
		spool_writer_cut(j->w);
		if (j->w->error == 0)
			(void)sync_file_range(
			    j->w->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	}
	for (j = batch; j != NULL; j = j->next) {
		if (spool_writer_sync(j->w) == -1 ||
		    spool_writer_publish(j->w, SPOOL_QUEUE) == -1)
			j->error = errno != 0 ? errno : EIO;
		else
			any = true;
	}
	/* One directory sync makes every rename of the group durable. */
	if (any && fsync(c->sp->dfd[SPOOL_QUEUE]) == -1) {
		int e = errno;
		for (j = batch; j != NULL; j = j->next)
			if (j->error == 0) {
				/* Not durable: take it back out of the queue. */
				unlinkat(c->sp->dfd[SPOOL_QUEUE], j->w->qid, 0);
				j->error = e;
			}
	}
}

static void *
committer_main(void *arg)
{
	struct committer *c = arg;
	struct commit_job *batch, *last;
	uint64_t n;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (c->todo == NULL && !c->stop)
			pthread_cond_wait(&c->cond, &c->lock);
		if (c->todo == NULL && c->stop)
			break;
		batch = c->todo;
		c->todo = NULL;
		c->todo_tail = &c->todo;
		pthread_mutex_unlock(&c->lock);

		commit_batch(c, batch);

		pthread_mutex_lock(&c->lock);
		n = 0;
		for (last = batch; last->next != NULL; last = last->next)
			n++;
		*c->done_tail = batch;
		c->done_tail = &last->next;
		c->stats.messages += n + 1;
		c->stats.batches++;
		pthread_mutex_unlock(&c->lock);
		(void)!write(c->pipe[1], "x", 1);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void
committer_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct committer *c = arg;
	struct commit_job *list, *j;
	char buf[256];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&c->lock);
	list = c->done;
	c->done = NULL;
	c->done_tail = &c->done;
	pthread_mutex_unlock(&c->lock);
	while ((j = list) != NULL) {
		list = j->next;
		j->cb(j->error, j->w, j->arg);
		spool_writer_free(&j->w);
		free(j);
	}
}

struct committer *
committer_new(struct event_base *base, struct spool *sp)
{
	struct committer *c = xcalloc(1, sizeof(*c));

	c->sp = sp;
	c->todo_tail = &c->todo;
	c->done_tail = &c->done;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	if (pipe2(c->pipe, O_CLOEXEC | O_NONBLOCK) == -1)
		msg_fatal("committer: pipe: %m");
	c->ev = event_new(
	    base, c->pipe[0], EV_READ | EV_PERSIST, committer_done_cb, c);
	event_add(c->ev, NULL);
	if (pthread_create(&c->thread, NULL, committer_main, c) != 0)
		msg_fatal("committer: cannot start thread");
	return c;
}

void
committer_free(struct committer **cp)
{
	struct committer *c = *cp;

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	committer_done_cb(c->pipe[0], EV_READ, c);
	event_free(c->ev);
	close(c->pipe[0]);
	close(c->pipe[1]);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
	*cp = NULL;
}

void
committer_submit(
    struct committer *c, struct spool_writer *w, commit_cb cb, void *arg)
{
	struct commit_job *j = xcalloc(1, sizeof(*j));

	j->w = w;
	j->cb = cb;
	j->arg = arg;
	pthread_mutex_lock(&c->lock);
	*c->todo_tail = j;
	c->todo_tail = &j->next;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

void
committer_stats(struct committer *c, struct commit_stats *st)
{
	pthread_mutex_lock(&c->lock);
	*st = c->stats;
	pthread_mutex_unlock(&c->lock);
}
