// SPDX-License-Identifier: MIT
/* libFuzzer target for relay-server tokens: payload parser, Authorization check. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../relay-server/relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct tok_key fuzz_key = { {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
	0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
	0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
} };

/* Every field of an accepted payload keeps the contract. */
static void
fuzz_check_token(const struct relay_token *t)
{
	if (!relay_cid_valid(t->cid) || (t->side != 0 && t->side != 1) || !t->user[0] ||
	    !t->peer[0] || strlen(t->user) > RELAY_USER_MAX || strlen(t->peer) > RELAY_USER_MAX ||
	    strcmp(t->user, t->peer) == 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relay_token t;
	char hdr[TOK_STR_MAX + 16], tok[TOK_STR_MAX];

	/* The input as a payload (what a MAC-valid token may carry). */
	if (relay_token_parse((const char *)data, size, &t) == 0)
		fuzz_check_token(&t);

	/* The input as a payload signed with the key: the whole check. */
	if (size <= TOK_PAYLOAD_MAX &&
	    tok_mint(&fuzz_key, TOK_KIND_RELAY, 2000000000, data, size, tok, sizeof(tok)) > 0) {
		memcpy(hdr, "Bearer ", 7);
		strcpy(hdr + 7, tok);
		if (relay_token_check(&fuzz_key, hdr, 1700000000, NULL, &t) == RELAY_TOK_OK)
			fuzz_check_token(&t);
	}

	/* The input as the header value itself. */
	if (size < sizeof(hdr)) {
		memcpy(hdr, data, size);
		hdr[size] = '\0';
		if (relay_token_check(&fuzz_key, hdr, 1700000000, NULL, &t) == RELAY_TOK_OK)
			fuzz_check_token(&t);
	}
	return 0;
}
