/* SPDX-License-Identifier: MIT */
/* Unit tests for dmn: signal mask and waits, sd_notify datagrams, clocks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "dmn.h"

static pthread_t main_thread;

/* ---- signals ---- */

static void
test_signals_init(void **state)
{
	struct sigaction sa;
	sigset_t cur;

	(void)state;
	/* main() ran dmn_signals_init(); running it again must be harmless. */
	assert_int_equal(dmn_signals_init(), 0);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &cur), 0);
	assert_true(sigismember(&cur, SIGTERM));
	assert_true(sigismember(&cur, SIGINT));
	assert_true(sigismember(&cur, SIGHUP));
	assert_true(sigismember(&cur, SIGQUIT));
	assert_false(sigismember(&cur, SIGUSR1));
	assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
	assert_true(sa.sa_handler == SIG_IGN);
}

static void
test_wait_timeout(void **state)
{
	long long t0, dt;

	(void)state;
	t0 = dmn_now_ms();
	assert_int_equal(dmn_wait(0), DMN_TIMEOUT);
	assert_true(dmn_now_ms() - t0 < 50);

	t0 = dmn_now_ms();
	assert_int_equal(dmn_wait(120), DMN_TIMEOUT);
	dt = dmn_now_ms() - t0;
	/* Millisecond truncation on both ends can cost one. */
	assert_true(dt >= 119);
	assert_true(dt < 1000);
}

static void
test_wait_reload(void **state)
{
	long long t0;

	(void)state;
	assert_int_equal(raise(SIGHUP), 0);
	t0 = dmn_now_ms();
	assert_int_equal(dmn_wait(2000), DMN_RELOAD);
	assert_true(dmn_now_ms() - t0 < 1000);
	/* Taken, not left pending. */
	assert_int_equal(dmn_wait(0), DMN_TIMEOUT);
}

static void
test_wait_stop(void **state)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGQUIT };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		assert_int_equal(raise(sigs[i]), 0);
		assert_int_equal(dmn_wait(2000), DMN_STOP);
	}
	/* Process-directed, as systemd sends it. */
	assert_int_equal(kill(getpid(), SIGTERM), 0);
	assert_int_equal(dmn_wait(2000), DMN_STOP);
	assert_int_equal(dmn_wait(0), DMN_TIMEOUT);
}

static void
test_wait_both_pending(void **state)
{
	enum dmn_event a, b;

	(void)state;
	assert_int_equal(raise(SIGTERM), 0);
	assert_int_equal(raise(SIGHUP), 0);
	a = dmn_wait(1000);
	b = dmn_wait(1000);
	assert_true((a == DMN_RELOAD && b == DMN_STOP) || (a == DMN_STOP && b == DMN_RELOAD));
	assert_int_equal(dmn_wait(0), DMN_TIMEOUT);
}

struct kicker {
	int sig;
	int delay_ms;
	bool process; /* kill() the process rather than the main thread */
};

static void *
kicker_main(void *arg)
{
	struct kicker *k = arg;
	struct timespec ts = { k->delay_ms / 1000, (long)(k->delay_ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
	if (k->process)
		kill(getpid(), k->sig);
	else
		pthread_kill(main_thread, k->sig);
	return NULL;
}

/* The signal arrives while dmn_wait() is already blocked, from another
 * thread that inherited the mask. */
static void
test_wait_from_thread(void **state)
{
	struct kicker k = { .sig = SIGHUP, .delay_ms = 50 };
	pthread_t th;
	long long t0, dt;

	(void)state;
	t0 = dmn_now_ms();
	assert_int_equal(pthread_create(&th, NULL, kicker_main, &k), 0);
	assert_int_equal(dmn_wait(5000), DMN_RELOAD);
	dt = dmn_now_ms() - t0;
	pthread_join(th, NULL);
	assert_true(dt >= 40);
	assert_true(dt < 2000);

	/* -1 waits without limit; a lost signal would hang, so an alarm (not
	 * in the set, default action: terminate) turns that into a failure. */
	k = (struct kicker){ .sig = SIGTERM, .delay_ms = 50, .process = true };
	alarm(10);
	assert_int_equal(pthread_create(&th, NULL, kicker_main, &k), 0);
	assert_int_equal(dmn_wait(-1), DMN_STOP);
	alarm(0);
	pthread_join(th, NULL);
}

/* ---- sd_notify ---- */

/* Binds a datagram socket at addr, with a short receive timeout so that a
 * lost message fails instead of hanging. */
static int
bind_dgram(const struct sockaddr_un *sa, socklen_t len)
{
	struct timeval tv = { 2, 0 };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (const struct sockaddr *)sa, len), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	return fd;
}

static void
expect_datagram(int fd, const char *want)
{
	char buf[512];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);

	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

static void
test_notify_unset(void **state)
{
	(void)state;
	assert_int_equal(unsetenv("NOTIFY_SOCKET"), 0);
	assert_int_equal(dmn_notify("READY=1"), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", "", 1), 0);
	assert_int_equal(dmn_notify("READY=1"), 0);
	unsetenv("NOTIFY_SOCKET");
}

static void
test_notify_path(void **state)
{
	char dir[] = "/tmp/test_dmn.XXXXXX";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", dir);
	fd = bind_dgram(&sa, sizeof(sa));
	assert_int_equal(setenv("NOTIFY_SOCKET", sa.sun_path, 1), 0);

	assert_int_equal(dmn_notify("READY=1"), 1);
	expect_datagram(fd, "READY=1");
	assert_int_equal(dmn_notify("STATUS=serving 3 peers\nWATCHDOG=1"), 1);
	expect_datagram(fd, "STATUS=serving 3 peers\nWATCHDOG=1");
	assert_int_equal(dmn_notify("STOPPING=1"), 1);
	expect_datagram(fd, "STOPPING=1");

	close(fd);
	unlink(sa.sun_path);
	rmdir(dir);
	unsetenv("NOTIFY_SOCKET");
}

static void
test_notify_abstract(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char env[sizeof(sa.sun_path) + 1];
	size_t len;
	int fd;

	(void)state;
	/* Abstract names are compared over their exact length, so a sender
	 * that counted a trailing NUL or the whole sun_path would miss. */
	snprintf(env, sizeof(env), "@p2pcdn-test-dmn-%d", (int)getpid());
	len = strlen(env);
	memcpy(sa.sun_path, env, len);
	sa.sun_path[0] = '\0';
	fd = bind_dgram(&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	assert_int_equal(setenv("NOTIFY_SOCKET", env, 1), 0);

	assert_int_equal(dmn_notify("READY=1"), 1);
	expect_datagram(fd, "READY=1");
	assert_int_equal(dmn_notify("RELOADING=1"), 1);
	expect_datagram(fd, "RELOADING=1");

	close(fd);
	/* Nobody bound any more: refused, and reported. */
	assert_int_equal(dmn_notify("READY=1"), -ECONNREFUSED);
	unsetenv("NOTIFY_SOCKET");
}

static void
test_notify_errors(void **state)
{
	char longpath[200];

	(void)state;
	assert_int_equal(setenv("NOTIFY_SOCKET", "/nonexistent-dir/notify", 1), 0);
	assert_int_equal(dmn_notify("READY=1"), -ENOENT);
	assert_int_equal(dmn_notify(NULL), -EINVAL);

	assert_int_equal(setenv("NOTIFY_SOCKET", "relative/notify", 1), 0);
	assert_true(dmn_notify("READY=1") < 0);

	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(setenv("NOTIFY_SOCKET", longpath, 1), 0);
	assert_int_equal(dmn_notify("READY=1"), -ENAMETOOLONG);
	longpath[0] = '@';
	assert_int_equal(setenv("NOTIFY_SOCKET", longpath, 1), 0);
	assert_int_equal(dmn_notify("READY=1"), -ENAMETOOLONG);
	unsetenv("NOTIFY_SOCKET");
}

/* ---- clocks ---- */

static void
test_clocks(void **state)
{
	struct timespec ts = { 0, 30 * 1000000 };
	long long t0, t1, w;

	(void)state;
	t0 = dmn_now_ms();
	assert_true(t0 > 0);
	nanosleep(&ts, NULL);
	t1 = dmn_now_ms();
	assert_true(t1 - t0 >= 29);
	assert_true(t1 - t0 < 1000);

	w = dmn_wall_s();
	assert_true(w - (long long)time(NULL) <= 1);
	assert_true((long long)time(NULL) - w <= 1);
	/* Sanity: after 2020-01-01, i.e. seconds, not milliseconds. */
	assert_true(w > 1577836800LL);
	assert_true(w < 1577836800LL * 10);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signals_init),
		cmocka_unit_test(test_wait_timeout),
		cmocka_unit_test(test_wait_reload),
		cmocka_unit_test(test_wait_stop),
		cmocka_unit_test(test_wait_both_pending),
		cmocka_unit_test(test_wait_from_thread),
		cmocka_unit_test(test_notify_unset),
		cmocka_unit_test(test_notify_path),
		cmocka_unit_test(test_notify_abstract),
		cmocka_unit_test(test_notify_errors),
		cmocka_unit_test(test_clocks),
	};

	/* As a daemon does: before any thread, so all inherit the mask. */
	if (dmn_signals_init() != 0)
		return 1;
	main_thread = pthread_self();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
