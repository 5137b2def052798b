// SPDX-License-Identifier: MIT
/* Fuzz target: index-server request bodies (join, heartbeat/leave/publish) and stored peer info. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../index-server/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned which[] = { IDX_F_JOIN, IDX_F_PAIR };
	struct idx_req in;
	const char *code;
	char err[256], addr[ADDR_STR_MAX];
	long long bw;
	int role;

	json_t *o = json_loadb((const char *)data, size, 0, NULL);
	if (o) {
		for (size_t i = 0; i < sizeof(which) / sizeof(which[0]); i++) {
			code = NULL;
			int r = idx_parse_body(o, which[i], &in, &code, err, sizeof(err));
			if (r < 0 && (!code || !err[0]))
				__builtin_trap(); /* every refusal names its code */
			if (r == 0 &&
			    (strlen(in.pid_hex) != PEERID_HEX_LEN || in.pid > PEERID_MAX ||
			     !idx_channel_ok(in.channel, strlen(in.channel)) ||
			     ((which[i] & IDX_F_LISTEN) && !in.listen_addr[0])))
				__builtin_trap();
		}
		json_decref(o);
	}
	/* The same bytes as a stored "ADDR BW ROLE" entry. */
	if (idx_info_split((const char *)data, size, addr, sizeof(addr), &bw, &role) == 0 &&
	    (strlen(addr) >= sizeof(addr) || bw < 0 || (role != 0 && role != 1)))
		__builtin_trap();
	return 0;
}
