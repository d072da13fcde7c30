/* pm_web_worker.c - the API's thread (see pm_web_worker.h). */
#include "pm_web_worker.h"

#include "pm_error.h"
#include "pm_mem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct pm_web_worker_t {
    pm_web_job_fn *run;
    void *arg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pm_web_job_t *head, *tail; /* posted, not yet taken */
    bool stopping;
};

/* The next job (NULL: stopping and none left), and whether stopping. */
static pm_web_job_t *
s_take(pm_web_worker_t *self, bool *stopping)
{
    pthread_mutex_lock(&self->lock);
    while (!self->head && !self->stopping)
        pthread_cond_wait(&self->wake, &self->lock);
    pm_web_job_t *job = self->head;
    if (job) {
        self->head = job->next;
        if (!self->head)
            self->tail = NULL;
        job->next = NULL;
    }
    *stopping = self->stopping;
    pthread_mutex_unlock(&self->lock);
    return job;
}

static void *
s_main(void *arg)
{
    pm_web_worker_t *self = arg;
    bool stopping = false;
    pm_web_job_t *job;
    while ((job = s_take(self, &stopping))) {
        struct MHD_Connection *conn = job->conn; /* JOB may go after run */
        self->run(job, stopping, self->arg);
        MHD_resume_connection(conn);
    }
    return NULL;
}

pm_web_worker_t *
pm_web_worker_new(pm_web_job_fn *run, void *arg, char **why)
{
    pm_web_worker_t *self = pm_calloc(1, sizeof *self);
    self->run = run;
    self->arg = arg;
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    int err = pthread_create(&self->thread, NULL, s_main, self);
    if (err) {
        pm_why(why, "web", "cannot start the API's thread: %s", strerror(err));
        pthread_cond_destroy(&self->wake);
        pthread_mutex_destroy(&self->lock);
        free(self);
        return NULL;
    }
    return self;
}

void
pm_web_worker_destroy(pm_web_worker_t **self_p)
{
    pm_web_worker_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    self->stopping = true;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    pthread_join(self->thread, NULL);
    pthread_cond_destroy(&self->wake);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

bool
pm_web_worker_post(pm_web_worker_t *self, pm_web_job_t *job)
{
    pthread_mutex_lock(&self->lock);
    bool taken = !self->stopping;
    if (taken) {
        /* suspended before the worker can see it: it may resume at once */
        MHD_suspend_connection(job->conn);
        job->next = NULL;
        if (self->tail)
            self->tail->next = job;
        else
            self->head = job;
        self->tail = job;
        pthread_cond_signal(&self->wake);
    }
    pthread_mutex_unlock(&self->lock);
    return taken;
}
