/* SPDX-License-Identifier: MIT */
/* Daemon lifecycle: signals, systemd readiness, drain on SIGTERM. */
#include "dmn.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* The signals dmn_wait() turns into events; all others keep their default. */
static void
dmn_sigset(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGQUIT);
}

int
dmn_signals_init(void)
{
	struct sigaction sa;
	sigset_t set;
	int rc;

	/* A peer closing a socket mid-write must cost an EPIPE, not the
	 * process. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		return -errno;
	dmn_sigset(&set);
	/* Blocked, not handled: they stay pending until dmn_wait() takes them
	 * synchronously, so no handler has to be async-signal-safe. */
	rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
	return rc != 0 ? -rc : 0;
}

long long
dmn_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long
dmn_wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec;
}

enum dmn_event
dmn_wait(int timeout_ms)
{
	long long deadline = timeout_ms >= 0 ? dmn_now_ms() + timeout_ms : 0;
	struct timespec ts;
	sigset_t set;
	long long left;
	int sig;

	dmn_sigset(&set);
	for (;;) {
		if (timeout_ms < 0) {
			sig = sigwaitinfo(&set, NULL);
		} else {
			left = deadline - dmn_now_ms();
			if (left < 0)
				left = 0;
			ts.tv_sec = (time_t)(left / 1000);
			ts.tv_nsec = (long)(left % 1000) * 1000000;
			sig = sigtimedwait(&set, NULL, &ts);
		}
		if (sig == SIGHUP)
			return DMN_RELOAD;
		if (sig > 0)
			return DMN_STOP;
		/* EINTR: a signal outside the set ran a handler (e.g. a
		 * debugger or profiler); wait out the rest of the time. */
		if (errno != EINTR)
			return DMN_TIMEOUT;
	}
}

int
dmn_notify(const char *state)
{
	struct sockaddr_un sa;
	const char *path;
	socklen_t salen;
	size_t len;
	ssize_t n;
	int fd, rc;

	if (state == NULL)
		return -EINVAL;
	path = getenv("NOTIFY_SOCKET");
	if (path == NULL || path[0] == '\0')
		return 0;
	/* systemd hands out a filesystem path or, with '@', an abstract name. */
	if (path[0] != '/' && path[0] != '@')
		return -EAFNOSUPPORT;
	len = strlen(path);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (path[0] == '@') {
		/* Abstract names are exactly len bytes long, the leading NUL
		 * included and no terminating one, so the length must not
		 * cover the rest of sun_path. */
		if (len > sizeof(sa.sun_path))
			return -ENAMETOOLONG;
		memcpy(sa.sun_path, path, len);
		sa.sun_path[0] = '\0';
		salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	} else {
		if (len >= sizeof(sa.sun_path))
			return -ENAMETOOLONG;
		memcpy(sa.sun_path, path, len + 1);
		salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	}

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	do {
		n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
	} while (n < 0 && errno == EINTR);
	rc = n < 0 ? -errno : 1;
	close(fd);
	return rc;
}
