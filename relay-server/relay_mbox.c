// SPDX-License-Identifier: MIT
/* relay-server: mailbox queues with sequence numbers and acknowledgements. */
#include <stdlib.h>
#include <string.h>

#include "relay.h"

/*
 * Why sequence numbers and acknowledgements: an HTTP request can fail
 * after the relay acted on it (the answer is lost with the connection).
 * The sender numbers its messages 1, 2, 3...; a retried POST carries the
 * same number and is recognised as a duplicate, so nothing is queued
 * twice. The receiver's GET names the highest number it has processed;
 * only then are those messages freed, so a lost GET answer is simply sent
 * again and the receiver skips what it already has. Nothing is lost or
 * repeated as long as both sides follow these two rules.
 */

enum relay_put_result
relay_mbox_put(struct relay_mbox *m, uint64_t seq, const void *data, size_t len, size_t cap)
{
	struct relay_msg *msg;

	if (seq <= m->in_seq)
		return RELAY_PUT_DUPLICATE;
	if (seq != m->in_seq + 1)
		return RELAY_PUT_GAP;
	if (len > cap || m->bytes > cap - len)
		return RELAY_PUT_FULL;
	msg = malloc(sizeof(*msg) + len);
	if (!msg)
		return RELAY_PUT_NOMEM;
	msg->next = NULL;
	msg->seq = seq;
	msg->len = len;
	if (len)
		memcpy(msg->data, data, len);
	if (m->tail)
		m->tail->next = msg;
	else
		m->head = msg;
	m->tail = msg;
	m->in_seq = seq;
	m->bytes += len;
	m->count++;
	return RELAY_PUT_OK;
}

size_t
relay_mbox_ack(struct relay_mbox *m, uint64_t ack)
{
	size_t freed = 0;

	if (ack > m->in_seq)
		ack = m->in_seq; /* cannot acknowledge what was never sent */
	if (ack > m->acked)
		m->acked = ack;
	while (m->head && m->head->seq <= m->acked) {
		struct relay_msg *msg = m->head;
		m->head = msg->next;
		if (!m->head)
			m->tail = NULL;
		freed += msg->len;
		m->bytes -= msg->len;
		m->count--;
		free(msg);
	}
	return freed;
}

size_t
relay_mbox_clear(struct relay_mbox *m)
{
	size_t n = m->count;
	while (m->head) {
		struct relay_msg *msg = m->head;
		m->head = msg->next;
		free(msg);
	}
	m->tail = NULL;
	m->bytes = 0;
	m->count = 0;
	return n;
}
