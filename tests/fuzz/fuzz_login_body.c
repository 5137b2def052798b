// SPDX-License-Identifier: MIT
/* Fuzz target: the login-server's request bodies (login, register, connect, connect result). */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../login-server/login.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The bytes as raw bodies, and cut into three field values of a well-formed
 * login body, so the field checks are reached without a JSON corpus. */
static void login_fuzz_fields(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct login_req r;
	login_fuzz_fields(data, size);
	const char *body = (const char *)data, *code;
	char msg[200], target[LOGIN_USER_MAX + 1];
	int success;

	for (int reg = 0; reg < 2; reg++) {
		code = NULL;
		int ret = login_parse_login(body, size, !reg, &r, &code, msg, sizeof(msg));
		if (ret < 0 && !code)
			__builtin_trap(); /* every failure names its code */
		if (ret == 0 &&
		    (!login_user_ok(r.user, strlen(r.user)) || r.listen_port < 0 ||
		     r.listen_port > 65535 || (r.has_private && r.private_addr.port == 0) ||
		     strlen(r.password) > LOGIN_PASS_MAX))
			__builtin_trap();
	}
	code = NULL;
	if (login_parse_connect(body, size, target, sizeof(target), &code, msg, sizeof(msg)) == 0) {
		if (!login_user_ok(target, strlen(target)))
			__builtin_trap();
	} else if (!code)
		__builtin_trap();
	code = NULL;
	if (login_parse_result(body, size, &success, &code, msg, sizeof(msg)) == 0) {
		if (success != 0 && success != 1)
			__builtin_trap();
	} else if (!code)
		__builtin_trap();
	return 0;
}

static void
login_fuzz_fields(const uint8_t *data, size_t size)
{
	static struct login_req r;
	const char *code;
	char msg[200];
	size_t a = size / 3, b = 2 * size / 3;
	json_t *o = json_object();
	json_object_set_new(o, "user", json_stringn_nocheck((const char *)data, a));
	json_object_set_new(o, "password", json_string("pw"));
	json_object_set_new(o, "listen_port", json_integer(size ? data[0] * 300 - 5000 : 0));
	json_object_set_new(o, "private_addr", json_stringn_nocheck((const char *)data + a, b - a));
	json_object_set_new(o, "public_key",
			    json_stringn_nocheck((const char *)data + b, size - b));
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!text)
		return;
	code = NULL;
	if (login_parse_login(text, strlen(text), true, &r, &code, msg, sizeof(msg)) < 0 && !code)
		__builtin_trap();
	free(text);
}
