// SPDX-License-Identifier: MIT
/* login-server: the shared environment's settings swap and live K_ra counters. */
#include <stdlib.h>

#include "dmn.h"
#include "login.h"

struct login_settings *
login_settings_get(struct login_env *env)
{
	pthread_mutex_lock(&env->set_lock);
	struct login_settings *s = env->set;
	atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&env->set_lock);
	return s;
}

void
login_settings_put(struct login_settings *s)
{
	if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
		tok_key_wipe(&s->relay_key);
		free(s);
	}
}

void
login_settings_publish(struct login_env *env, struct login_settings *s)
{
	pthread_mutex_lock(&env->set_lock);
	struct login_settings *old = env->set;
	env->set = s;
	pthread_mutex_unlock(&env->set_lock);
	login_settings_put(old);
}

/* K_ra over the last ten minutes: one slot per minute. */
static void
login_kra_roll(struct login_env *env)
{
	long long minute = dmn_now_ms() / 60000;
	if (env->kra_minute == 0)
		env->kra_minute = minute;
	while (env->kra_minute < minute) {
		env->kra_minute++;
		env->kra_total[env->kra_minute % 10] = 0;
		env->kra_relay[env->kra_minute % 10] = 0;
		if (minute - env->kra_minute > 10)
			env->kra_minute = minute - 10;
	}
}

void
login_kra_count(struct login_env *env, bool relayed, bool new_connect)
{
	pthread_mutex_lock(&env->kra_lock);
	login_kra_roll(env);
	unsigned slot = (unsigned)(env->kra_minute % 10);
	if (new_connect) {
		env->kra_total[slot]++;
		env->kra_all_total++;
	}
	if (relayed) {
		env->kra_relay[slot]++;
		env->kra_all_relay++;
	}
	pthread_mutex_unlock(&env->kra_lock);
}

double
login_kra_window(struct login_env *env)
{
	unsigned long long t = 0, r = 0;
	pthread_mutex_lock(&env->kra_lock);
	login_kra_roll(env);
	for (int i = 0; i < 10; i++) {
		t += env->kra_total[i];
		r += env->kra_relay[i];
	}
	pthread_mutex_unlock(&env->kra_lock);
	return login_kra(r, t);
}
