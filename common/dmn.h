/* SPDX-License-Identifier: MIT */
/* Daemon lifecycle: signals, systemd readiness, drain on SIGTERM. */
#ifndef P2PCDN_DMN_H
#define P2PCDN_DMN_H

#include <stdbool.h>

/* Blocks SIGTERM, SIGINT, SIGHUP, SIGQUIT in the calling thread and ignores
 * SIGPIPE. Call first thing in main(), before any thread starts, so every
 * thread inherits the mask and only dmn_wait() receives them. Returns 0 or
 * a negative errno. */
int dmn_signals_init(void);

enum dmn_event {
	DMN_TIMEOUT = 0, /* nothing arrived within the wait */
	DMN_STOP,        /* SIGTERM / SIGINT / SIGQUIT: drain and exit */
	DMN_RELOAD,      /* SIGHUP: reload what can be reloaded */
};

/* Waits up to timeout_ms (-1 = forever) for a signal. Main thread only. */
enum dmn_event dmn_wait(int timeout_ms);

/* sd_notify(3) without libsystemd: sends state ("READY=1", "RELOADING=1",
 * "STOPPING=1", "STATUS=...", "WATCHDOG=1") to $NOTIFY_SOCKET when set
 * (abstract sockets included). Returns 1 sent, 0 not under systemd, or a
 * negative errno. Any thread. */
int dmn_notify(const char *state);

/* Monotonic milliseconds, and wall-clock seconds. */
long long dmn_now_ms(void);
long long dmn_wall_s(void);

#endif
