// SPDX-License-Identifier: MIT
/* login-server: worker threads for what blocks (argon2id, account lookups). */
#include <errno.h>
#include <stdlib.h>

#include "log.h"
#include "login.h"

/*
 * argon2id takes tens of milliseconds of CPU and a lot of memory on purpose;
 * on an HTTP pool thread it would stall every request behind it. Jobs wait
 * in a bounded queue (beyond it the login gets 503, so a flood of logins
 * costs memory in proportion to the bound, not to the flood) and a fixed
 * number of threads run them; the second half of a job runs on the loop
 * thread, where the request's asynchronous work continues.
 */
struct login_job {
	struct login_job *next;
	void (*fn)(void *arg);
	void (*done)(void *arg);
	void *arg;
};

struct login_work {
	struct login_env *env;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct login_job *head, *tail;
	int queued, queue_max;
	bool stopping;
	pthread_t *threads;
	int nthreads;
};

static void
login_job_done(void *arg)
{
	struct login_job *j = arg;
	j->done(j->arg);
	free(j);
}

static void *
login_work_main(void *arg)
{
	struct login_work *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->head && !w->stopping)
			pthread_cond_wait(&w->cond, &w->lock);
		if (!w->head)
			break; /* stopping and drained */
		struct login_job *j = w->head;
		w->head = j->next;
		if (!w->head)
			w->tail = NULL;
		w->queued--;
		pthread_mutex_unlock(&w->lock);
		j->fn(j->arg);
		if (evl_call(w->env->loop, login_job_done, j) < 0) {
			/* The loop is gone (shutdown): finish here. */
			login_job_done(j);
		}
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	rds_thread_done(w->env->rds);
	return NULL;
}

struct login_work *
login_work_new(struct login_env *env, int threads, int queue_max)
{
	struct login_work *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->env = env;
	w->queue_max = queue_max;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->threads = calloc((size_t)threads, sizeof(*w->threads));
	if (!w->threads)
		goto fail;
	for (int i = 0; i < threads; i++) {
		if (pthread_create(&w->threads[i], NULL, login_work_main, w) != 0)
			goto fail;
		w->nthreads++;
	}
	return w;
fail:
	login_work_free(w);
	return NULL;
}

void
login_work_free(struct login_work *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	for (int i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	free(w->threads);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

int
login_work_submit(struct login_work *w, void (*fn)(void *arg), void (*done)(void *arg), void *arg)
{
	struct login_job *j = malloc(sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->next = NULL;
	j->fn = fn;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&w->lock);
	if (w->stopping || w->queued >= w->queue_max) {
		pthread_mutex_unlock(&w->lock);
		free(j);
		return -EBUSY;
	}
	if (w->tail)
		w->tail->next = j;
	else
		w->head = j;
	w->tail = j;
	w->queued++;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

int
login_work_queued(struct login_work *w)
{
	pthread_mutex_lock(&w->lock);
	int n = w->queued;
	pthread_mutex_unlock(&w->lock);
	return n;
}
