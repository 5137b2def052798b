// SPDX-License-Identifier: MIT
/* Fuzz target: session tokens in the Authorization header, and connect ids. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../login-server/login.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	char user[LOGIN_USER_MAX + 1], th[LOGIN_TH_HEX];
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (login_parse_token(s, user, sizeof(user), th) == 0 &&
	    (!login_user_ok(user, strlen(user)) || strlen(th) != 64))
		__builtin_trap();
	if (login_cid_ok(s) && strlen(s) != 32)
		__builtin_trap();
	free(s);
	return 0;
}
