// SPDX-License-Identifier: MIT
/* login-server: request body and token parsers (every one has a fuzz target). */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "login.h"

#define LOGIN_ERR(code, ...)                                                                       \
	do {                                                                                       \
		*ret_code = (code);                                                                \
		snprintf(msg, msgsize, __VA_ARGS__);                                               \
		goto fail;                                                                         \
	} while (0)

/* Loads an object body; 0 or -EINVAL with bad_json / expected_object. */
static int
login_load(const char *body, size_t len, json_t **ret, const char **ret_code, char *msg,
	   size_t msgsize)
{
	json_error_t e;
	json_t *o = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &e);
	if (!o) {
		*ret_code = "bad_json";
		snprintf(msg, msgsize, "body is not JSON: %s (line %d, column %d)", e.text, e.line,
			 e.column);
		return -EINVAL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		*ret_code = "expected_object";
		snprintf(msg, msgsize, "body must be a JSON object");
		return -EINVAL;
	}
	*ret = o;
	return 0;
}

static int
login_known(json_t *o, const char *const *known, const char **ret_code, char *msg, size_t msgsize)
{
	const char *k;
	json_t *v;
	json_object_foreach (o, k, v) {
		bool ok = false;
		for (size_t i = 0; known[i] && !ok; i++)
			ok = strcmp(k, known[i]) == 0;
		if (!ok) {
			*ret_code = "unknown_field";
			snprintf(msg, msgsize, "unknown field \"%.40s\"", k);
			return -EINVAL;
		}
	}
	return 0;
}

/* A string field without NUL bytes, of at most max bytes. NULL if absent. */
static const char *
login_str(json_t *o, const char *name, size_t max, bool *bad)
{
	json_t *v = json_object_get(o, name);
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v) || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		*bad = true;
		return NULL;
	}
	return json_string_value(v);
}

int
login_parse_login(const char *body, size_t len, bool need_peer, struct login_req *ret,
		  const char **ret_code, char *msg, size_t msgsize)
{
	static const char *const known_login[] = { "user",         "password",   "listen_port",
						   "private_addr", "public_key", NULL };
	static const char *const known_reg[] = { "user", "password", NULL };
	json_t *o = NULL, *v;
	const char *s;
	bool bad = false;

	memset(ret, 0, sizeof(*ret));
	if (login_load(body, len, &o, ret_code, msg, msgsize) < 0)
		return -EINVAL;
	if (login_known(o, need_peer ? known_login : known_reg, ret_code, msg, msgsize) < 0)
		goto fail;
	s = login_str(o, "user", LOGIN_USER_MAX, &bad);
	if (!s || bad || !login_user_ok(s, strlen(s)))
		LOGIN_ERR("bad_user", "user must be 3-32 characters of a-z 0-9 . _ - starting "
				      "with a letter or digit");
	memcpy(ret->user, s, strlen(s) + 1);
	s = login_str(o, "password", LOGIN_PASS_MAX, &bad);
	if (!s || bad || strlen(s) < (need_peer ? 1 : LOGIN_PASS_MIN))
		LOGIN_ERR("bad_password", "password must be a string of %d-%d bytes",
			  need_peer ? 1 : LOGIN_PASS_MIN, LOGIN_PASS_MAX);
	memcpy(ret->password, s, strlen(s) + 1);
	if (!need_peer)
		goto ok;

	v = json_object_get(o, "listen_port");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 65535)
			LOGIN_ERR("bad_port", "listen_port must be an integer 0-65535 (0 = not "
					      "listening)");
		ret->listen_port = (int)json_integer_value(v);
	}
	s = login_str(o, "private_addr", ADDR_STR_MAX, &bad);
	if (bad)
		LOGIN_ERR("bad_address", "private_addr must be a string \"IP\" or \"IP:PORT\"");
	if (s && *s) {
		if (addr_parse(s, strlen(s), false, &ret->private_addr) < 0)
			LOGIN_ERR("bad_address",
				  "private_addr must be an IPv4 or IPv6 address, optionally with "
				  "a port");
		if (!ret->private_addr.port)
			ret->private_addr.port = (unsigned short)ret->listen_port;
		if (!ret->private_addr.port)
			LOGIN_ERR("bad_address", "private_addr needs a port when listen_port is 0");
		ret->has_private = true;
	}
	s = login_str(o, "public_key", 64, &bad);
	if (bad)
		LOGIN_ERR("bad_public_key", "public_key must be base64 of 32 bytes");
	if (s) {
		if (tok_b64_decode(s, strlen(s), ret->pk, sizeof(ret->pk)) != LOGIN_PK_LEN)
			LOGIN_ERR("bad_public_key",
				  "public_key must be base64 of 32 bytes (an X25519 key)");
		ret->has_pk = true;
	}
ok:
	json_decref(o);
	return 0;
fail:
	/* The password may sit in jansson's buffers; wipe what we can see. */
	if (o) {
		json_t *p = json_object_get(o, "password");
		if (json_is_string(p))
			sodium_memzero((char *)(uintptr_t)json_string_value(p),
				       json_string_length(p));
	}
	json_decref(o);
	sodium_memzero(ret->password, sizeof(ret->password));
	return -EINVAL;
}

int
login_parse_connect(const char *body, size_t len, char *target, size_t size, const char **ret_code,
		    char *msg, size_t msgsize)
{
	static const char *const known[] = { "target", NULL };
	json_t *o = NULL;
	bool bad = false;

	if (login_load(body, len, &o, ret_code, msg, msgsize) < 0)
		return -EINVAL;
	if (login_known(o, known, ret_code, msg, msgsize) < 0)
		goto fail;
	const char *s = login_str(o, "target", LOGIN_USER_MAX, &bad);
	if (!s || bad || !login_user_ok(s, strlen(s)) || strlen(s) >= size)
		LOGIN_ERR("bad_target", "target must be an account name");
	memcpy(target, s, strlen(s) + 1);
	json_decref(o);
	return 0;
fail:
	json_decref(o);
	return -EINVAL;
}

int
login_parse_result(const char *body, size_t len, int *ret_success, const char **ret_code, char *msg,
		   size_t msgsize)
{
	static const char *const known[] = { "outcome", "detail", NULL };
	json_t *o = NULL;
	bool bad = false;

	if (login_load(body, len, &o, ret_code, msg, msgsize) < 0)
		return -EINVAL;
	if (login_known(o, known, ret_code, msg, msgsize) < 0)
		goto fail;
	const char *s = login_str(o, "outcome", 16, &bad);
	if (!s || bad || (strcmp(s, "success") != 0 && strcmp(s, "failure") != 0))
		LOGIN_ERR("bad_outcome", "outcome must be \"success\" or \"failure\"");
	login_str(o, "detail", 256, &bad);
	if (bad)
		LOGIN_ERR("bad_request", "detail must be a string of at most 256 bytes");
	*ret_success = strcmp(s, "success") == 0;
	json_decref(o);
	return 0;
fail:
	json_decref(o);
	return -EINVAL;
}

static void
login_th(const unsigned char *secret, size_t len, char th[LOGIN_TH_HEX])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, secret, len);
	sodium_bin2hex(th, LOGIN_TH_HEX, h, sizeof(h));
	sodium_memzero(h, sizeof(h));
}

int
login_parse_token(const char *header, char *user, size_t usize, char th[LOGIN_TH_HEX])
{
	unsigned char secret[LOGIN_SECRET_LEN + 4];

	if (!header || strncasecmp(header, "Bearer ", 7) != 0)
		return -EINVAL;
	const char *t = header + 7;
	while (*t == ' ')
		t++;
	size_t len = strlen(t);
	while (len && t[len - 1] == ' ')
		len--;
	const char *dot = memrchr(t, '.', len);
	if (!dot)
		return -EINVAL;
	size_t ulen = (size_t)(dot - t), slen = len - ulen - 1;
	if (!login_user_ok(t, ulen) || ulen >= usize || slen != 43)
		return -EINVAL;
	if (tok_b64_decode(dot + 1, slen, secret, sizeof(secret)) != LOGIN_SECRET_LEN) {
		sodium_memzero(secret, sizeof(secret));
		return -EINVAL;
	}
	memcpy(user, t, ulen);
	user[ulen] = '\0';
	login_th(secret, LOGIN_SECRET_LEN, th);
	sodium_memzero(secret, sizeof(secret));
	return 0;
}

int
login_token_make(const char *user, const unsigned char secret[LOGIN_SECRET_LEN], char *out,
		 size_t size, char th[LOGIN_TH_HEX])
{
	char b64[64];
	if (tok_b64_encode(secret, LOGIN_SECRET_LEN, b64, sizeof(b64)) < 0)
		return -ENOBUFS;
	int n = snprintf(out, size, "%s.%s", user, b64);
	sodium_memzero(b64, sizeof(b64));
	if (n < 0 || (size_t)n >= size)
		return -ENOBUFS;
	login_th(secret, LOGIN_SECRET_LEN, th);
	return 0;
}
