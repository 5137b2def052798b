// SPDX-License-Identifier: MIT
/* libFuzzer target for relay-server request parameters and the mailbox queue logic. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../relay-server/relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Query values (seq, ack, wait) and connect ids. */
static void
fuzz_params(const uint8_t *data, size_t size)
{
	char s[64];
	uint64_t v;
	size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1;

	memcpy(s, data, n);
	s[n] = '\0';
	if (relay_parse_u64(s, 7, 1000000, &v) == 0 && v > 1000000)
		abort();
	if (relay_cid_valid(s) && strlen(s) != RELAY_CID_LEN)
		abort();
}

/* The input as a script of puts and acks: the queue's books must balance. */
static void
fuzz_mbox(const uint8_t *data, size_t size)
{
	struct relay_mbox m = { 0 };
	static const char payload[256];

	for (size_t i = 0; i + 2 < size; i += 3) {
		uint64_t seq = data[i + 1] % 16 + (m.in_seq > 8 ? m.in_seq - 8 : 0);
		if (data[i] & 1) {
			relay_mbox_put(&m, seq, payload, data[i + 2], 600);
		} else {
			relay_mbox_ack(&m, seq);
		}
		size_t bytes = 0, count = 0;
		uint64_t last = m.acked;
		for (struct relay_msg *p = m.head; p; p = p->next) {
			if (p->seq != last + 1 || p->seq > m.in_seq)
				abort(); /* in order, no gap, nothing acked left */
			last = p->seq;
			bytes += p->len;
			count++;
		}
		if (bytes != m.bytes || count != m.count || m.bytes > 600 || m.acked > m.in_seq)
			abort();
	}
	relay_mbox_clear(&m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_params(data, size);
	fuzz_mbox(data, size);
	return 0;
}
