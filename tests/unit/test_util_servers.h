/* SPDX-License-Identifier: MIT */
/* Test helpers: private redis-server and PostgreSQL on free loopback ports in temp dirs. */
#ifndef P2PCDN_TEST_UTIL_SERVERS_H
#define P2PCDN_TEST_UTIL_SERVERS_H

/*
 * Each helper returns 0 or -1 and explains a failure on stderr; a test that
 * cannot start its server must fail, never skip. Servers run as children of
 * the test with PR_SET_PDEATHSIG, so even a crashed test leaves no server
 * behind; the *_stop functions also remove the temp dir. PostgreSQL refuses
 * to run as root, so as root initdb and postgres run as "nobody" (always
 * present on Debian, nothing to create) and the temp dir is handed to it.
 * Call these before starting threads: they fork.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TU_PG_RUN_AS "nobody"

static inline long long
tu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void
tu_sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* A loopback TCP port nobody listens on right now (the kernel's pick). */
static inline int
tu_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd, port = -1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* Reaps pid, waiting up to timeout_ms. 0 once reaped, -1 if still running. */
static inline int
tu_wait_pid(pid_t pid, int timeout_ms)
{
	long long end = tu_now_ms() + timeout_ms;
	int status;

	for (;;) {
		pid_t rc = waitpid(pid, &status, WNOHANG);

		if (rc == pid || (rc < 0 && errno == ECHILD))
			return 0;
		if (tu_now_ms() >= end)
			return -1;
		tu_sleep_ms(10);
	}
}

/* Stops pid with sig, then SIGKILL if it lingers past timeout_ms. */
static inline void
tu_kill_wait(pid_t pid, int sig, int timeout_ms)
{
	if (pid <= 0)
		return;
	kill(pid, sig);
	if (tu_wait_pid(pid, timeout_ms) < 0) {
		fprintf(stderr, "test_util: pid %d ignored signal %d, killing it\n", (int)pid, sig);
		kill(pid, SIGKILL);
		tu_wait_pid(pid, 5000);
	}
}

static inline int
tu_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* rm -rf dir; a no-op for "". */
static inline void
tu_rmtree(const char *dir)
{
	if (dir[0] != '\0')
		nftw(dir, tu_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Copies a server's log to stderr so a failed start explains itself. */
static inline void
tu_show_log(const char *path)
{
	char line[512];
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return;
	fprintf(stderr, "test_util: --- %s ---\n", path);
	while (fgets(line, sizeof(line), f) != NULL)
		fputs(line, stderr);
	fclose(f);
}

/* In a forked child: die with the test process, send output to log (or
 * /dev/null when NULL). Only async-signal-safe calls: the parent may have
 * threads. */
static inline void
tu_child_setup(const char *log)
{
	int fd = open(log != NULL ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);

	if (fd >= 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0 && fd != STDIN_FILENO) {
		dup2(fd, STDIN_FILENO);
		close(fd);
	}
	/* After any setuid: changing credentials clears the death signal. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(126);
}

/* ------------------------------------------------------------------ Redis */

struct tu_redis {
	pid_t pid;
	int port;
	char dir[64];
	char sock[128];    /* unix socket path */
	char password[64]; /* requirepass, "" for none */
};

/* 1 when something on port answers a PING with any Redis reply. */
static inline int
tu_redis_answers(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 0, .tv_usec = 500000 };
	char buf[64];
	ssize_t n;
	int fd, ok = 0;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && write(fd, "PING\r\n", 6) == 6) {
		n = read(fd, buf, sizeof(buf));
		/* "-NOAUTH ..." counts: the server is up, it wants a password. */
		ok = n > 0 && (buf[0] == '+' || buf[0] == '-');
	}
	close(fd);
	return ok;
}

/* (Re)starts redis-server on s->port in s->dir and waits until it answers. */
static inline int
tu_redis_spawn(struct tu_redis *s)
{
	char port[16], log[128];
	long long end;
	pid_t pid;

	snprintf(port, sizeof(port), "%d", s->port);
	snprintf(log, sizeof(log), "%s/redis.log", s->dir);
	pid = fork();
	if (pid < 0) {
		perror("test_util: fork");
		return -1;
	}
	if (pid == 0) {
		tu_child_setup(NULL);
		execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
		       "--dir", s->dir, "--save", "", "--appendonly", "no", "--daemonize", "no",
		       "--unixsocket", s->sock, "--unixsocketperm", "700", "--logfile", log,
		       "--requirepass", s->password, (char *)NULL);
		_exit(127);
	}
	s->pid = pid;
	end = tu_now_ms() + 10000;
	while (tu_now_ms() < end) {
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			s->pid = 0;
			tu_show_log(log);
			fprintf(stderr,
				"test_util: redis-server exited at start (installed? port %d "
				"taken?)\n",
				s->port);
			return -1;
		}
		if (tu_redis_answers(s->port))
			return 0;
		tu_sleep_ms(20);
	}
	tu_show_log(log);
	fprintf(stderr, "test_util: redis-server did not answer on port %d within 10 s\n", s->port);
	tu_kill_wait(pid, SIGKILL, 5000);
	s->pid = 0;
	return -1;
}

/* SIGKILLs the server (an outage, not a shutdown); the dir stays. */
static inline void
tu_redis_kill(struct tu_redis *s)
{
	tu_kill_wait(s->pid, SIGKILL, 5000);
	s->pid = 0;
}

/* Stops the server and removes its dir. Safe on a zeroed or half-started s. */
static inline void
tu_redis_stop(struct tu_redis *s)
{
	tu_kill_wait(s->pid, SIGTERM, 5000);
	s->pid = 0;
	tu_rmtree(s->dir);
	s->dir[0] = '\0';
}

/* Starts a fresh redis-server on a free loopback port; password may be
 * NULL. Clean up with tu_redis_stop, also after a failure. */
static inline int
tu_redis_start(struct tu_redis *s, const char *password)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "/tmp/p2pcdn-test-redis-XXXXXX");
	if (mkdtemp(s->dir) == NULL) {
		perror("test_util: mkdtemp");
		s->dir[0] = '\0';
		return -1;
	}
	snprintf(s->sock, sizeof(s->sock), "%s/redis.sock", s->dir);
	snprintf(s->password, sizeof(s->password), "%s", password != NULL ? password : "");
	s->port = tu_free_port();
	if (s->port < 0) {
		perror("test_util: no free port");
		return -1;
	}
	return tu_redis_spawn(s);
}

/* ------------------------------------------------------------- PostgreSQL */

struct tu_pg {
	pid_t pid;
	int port;
	char dir[64];
	char bindir[128];   /* "" to search PATH */
	char conninfo[256]; /* to the "postgres" database */
	uid_t uid;          /* who runs the server; ours unless we are root */
	gid_t gid;
};

/* The newest /usr/lib/postgresql/N/bin, or "" to rely on PATH. */
static inline void
tu_pg_find_bindir(char *buf, size_t size)
{
	glob_t g;
	size_t i;
	int best = -1;

	buf[0] = '\0';
	if (glob("/usr/lib/postgresql/*/bin/postgres", 0, NULL, &g) != 0)
		return;
	for (i = 0; i < g.gl_pathc; i++) {
		int v = atoi(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"));

		if (v > best) {
			best = v;
			snprintf(buf, size, "%.*s",
				 (int)(strlen(g.gl_pathv[i]) - strlen("/postgres")), g.gl_pathv[i]);
		}
	}
	globfree(&g);
}

/* Child side: drop root for PostgreSQL, which refuses to run as root. */
static inline void
tu_pg_child_creds(const struct tu_pg *s)
{
	if (geteuid() != 0)
		return;
	if (setgroups(0, NULL) != 0 || setgid(s->gid) != 0 || setuid(s->uid) != 0)
		_exit(125);
}

static inline void
tu_pg_exec(const struct tu_pg *s, const char *prog, char *const argv[])
{
	char path[256];

	if (s->bindir[0] != '\0') {
		snprintf(path, sizeof(path), "%s/%s", s->bindir, prog);
		execv(path, argv);
	} else {
		execvp(prog, argv);
	}
	_exit(127);
}

/* postmaster.pid line 8 reads "ready" once connections are accepted
 * (PostgreSQL 10+; the same signal pg_ctl -w waits for). */
static inline bool
tu_pg_ready(const struct tu_pg *s)
{
	char path[128], line[128];
	bool ready = false;
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "%s/data/postmaster.pid", s->dir);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL)
		if (++n == 8)
			ready = strncmp(line, "ready", 5) == 0;
	fclose(f);
	return ready;
}

/* Stops the server (fast shutdown) and removes its dir. Safe on a zeroed or
 * half-started s. */
static inline void
tu_pg_stop(struct tu_pg *s)
{
	tu_kill_wait(s->pid, SIGINT, 15000);
	s->pid = 0;
	tu_rmtree(s->dir);
	s->dir[0] = '\0';
}

/* initdb + postgres on a free loopback port (trust auth, user "postgres",
 * fsync off). s->conninfo reaches the "postgres" database. */
static inline int
tu_pg_start(struct tu_pg *s)
{
	char data[96], log[128], port[16];
	long long end;
	pid_t pid;
	int status;

	memset(s, 0, sizeof(*s));
	s->uid = geteuid();
	s->gid = getegid();
	if (s->uid == 0) {
		struct passwd *pw = getpwnam(TU_PG_RUN_AS);

		if (pw == NULL) {
			fprintf(stderr,
				"test_util: running as root, but there is no user %s to "
				"run PostgreSQL\n",
				TU_PG_RUN_AS);
			return -1;
		}
		s->uid = pw->pw_uid;
		s->gid = pw->pw_gid;
	}
	snprintf(s->dir, sizeof(s->dir), "/tmp/p2pcdn-test-pg-XXXXXX");
	if (mkdtemp(s->dir) == NULL) {
		perror("test_util: mkdtemp");
		s->dir[0] = '\0';
		return -1;
	}
	if (geteuid() == 0 && chown(s->dir, s->uid, s->gid) != 0) {
		perror("test_util: chown");
		return -1;
	}
	tu_pg_find_bindir(s->bindir, sizeof(s->bindir));
	s->port = tu_free_port();
	if (s->port < 0)
		return -1;
	snprintf(data, sizeof(data), "%s/data", s->dir);
	snprintf(port, sizeof(port), "%d", s->port);
	snprintf(s->conninfo, sizeof(s->conninfo),
		 "host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=5", s->port);

	snprintf(log, sizeof(log), "%s/initdb.log", s->dir);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		char *argv[] = { "initdb",       "-D", data,   "-U",        "postgres",
				 "--auth=trust", "-E", "UTF8", "--no-sync", NULL };

		tu_pg_child_creds(s);
		if (chdir(s->dir) != 0)
			_exit(124);
		tu_child_setup(log);
		tu_pg_exec(s, "initdb", argv);
	}
	end = tu_now_ms() + 60000;
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (tu_now_ms() > end) {
			tu_kill_wait(pid, SIGKILL, 5000);
			fprintf(stderr, "test_util: initdb took over 60 s\n");
			return -1;
		}
		tu_sleep_ms(20);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		tu_show_log(log);
		fprintf(stderr, "test_util: initdb failed (status %d; bindir \"%s\")\n", status,
			s->bindir);
		return -1;
	}

	snprintf(log, sizeof(log), "%s/postgres.log", s->dir);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		char *argv[] = { "postgres",
				 "-D",
				 data,
				 "-p",
				 port,
				 "-k",
				 s->dir,
				 "-c",
				 "listen_addresses=127.0.0.1",
				 "-c",
				 "fsync=off",
				 "-c",
				 "full_page_writes=off",
				 NULL };

		tu_pg_child_creds(s);
		if (chdir(s->dir) != 0)
			_exit(124);
		tu_child_setup(log);
		tu_pg_exec(s, "postgres", argv);
	}
	s->pid = pid;
	end = tu_now_ms() + 30000;
	while (tu_now_ms() < end) {
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			s->pid = 0;
			tu_show_log(log);
			fprintf(stderr, "test_util: postgres exited at start (port %d)\n", s->port);
			return -1;
		}
		if (tu_pg_ready(s))
			return 0;
		tu_sleep_ms(20);
	}
	tu_show_log(log);
	fprintf(stderr, "test_util: postgres not ready within 30 s\n");
	return -1;
}

#endif
