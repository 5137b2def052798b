// SPDX-License-Identifier: MIT
/* Unit tests for relay-server: mailbox queues (seq/ack/caps) and per-key session caps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../../relay-server/relay.h"

static void
test_mbox_order_dup_gap(void **state)
{
	struct relay_mbox m = { 0 };
	(void)state;

	assert_int_equal(relay_mbox_put(&m, 2, "b", 1, 100), RELAY_PUT_GAP);
	assert_int_equal(relay_mbox_put(&m, 1, "a", 1, 100), RELAY_PUT_OK);
	assert_int_equal(relay_mbox_put(&m, 1, "a", 1, 100), RELAY_PUT_DUPLICATE);
	assert_int_equal(relay_mbox_put(&m, 0, "a", 1, 100), RELAY_PUT_DUPLICATE);
	assert_int_equal(relay_mbox_put(&m, 2, "bb", 2, 100), RELAY_PUT_OK);
	assert_int_equal(relay_mbox_put(&m, 3, "", 0, 100), RELAY_PUT_OK);
	assert_int_equal(relay_mbox_put(&m, 5, "e", 1, 100), RELAY_PUT_GAP);
	assert_int_equal(m.count, 3);
	assert_int_equal(m.bytes, 3);
	assert_true(m.head->seq == 1 && m.head->next->seq == 2 && m.tail->seq == 3);
	assert_memory_equal(m.head->next->data, "bb", 2);
	/* Ack 0 frees nothing; an ack past what was sent is clamped. */
	assert_int_equal(relay_mbox_ack(&m, 0), 0);
	assert_int_equal(relay_mbox_ack(&m, 1), 1);
	assert_true(m.head->seq == 2);
	assert_int_equal(relay_mbox_ack(&m, 1), 0); /* acks never go back */
	assert_int_equal(relay_mbox_ack(&m, 99), 2);
	assert_true(m.acked == 3);
	assert_null(m.head);
	assert_null(m.tail);
	assert_int_equal(m.count, 0);
	assert_int_equal(relay_mbox_put(&m, 4, "d", 1, 100), RELAY_PUT_OK);
	assert_int_equal(relay_mbox_clear(&m), 1);
	assert_int_equal(m.bytes, 0);
}

static void
test_mbox_cap(void **state)
{
	struct relay_mbox m = { 0 };
	char buf[128] = { 0 };
	(void)state;

	assert_int_equal(relay_mbox_put(&m, 1, buf, 40, 64), RELAY_PUT_OK);
	assert_int_equal(relay_mbox_put(&m, 2, buf, 25, 64), RELAY_PUT_FULL);
	assert_true(m.in_seq == 1); /* refused: the same seq may come again */
	assert_int_equal(relay_mbox_put(&m, 2, buf, 24, 64), RELAY_PUT_OK);
	assert_int_equal(relay_mbox_put(&m, 3, buf, 65, 1000), RELAY_PUT_OK);
	assert_int_equal(relay_mbox_put(&m, 4, buf, 65, 64), RELAY_PUT_FULL);
	relay_mbox_ack(&m, 3);
	assert_int_equal(relay_mbox_put(&m, 4, buf, 64, 64), RELAY_PUT_OK);
	assert_int_equal(relay_mbox_put(&m, 5, buf, 65, 64), RELAY_PUT_FULL);
	relay_mbox_clear(&m);
}

static void
test_caps(void **state)
{
	struct relay_caps *c = relay_caps_new();
	char key[32];
	(void)state;

	assert_non_null(c);
	assert_int_equal(relay_caps_take(c, "10.0.0.1", 2), 0);
	assert_int_equal(relay_caps_take(c, "10.0.0.1", 2), 0);
	assert_int_equal(relay_caps_take(c, "10.0.0.1", 2), -EDQUOT);
	assert_int_equal(relay_caps_get(c, "10.0.0.1"), 2);
	assert_int_equal(relay_caps_take(c, "10.0.0.2", 2), 0);
	relay_caps_put(c, "10.0.0.1");
	assert_int_equal(relay_caps_take(c, "10.0.0.1", 2), 0);
	relay_caps_put(c, "nobody"); /* no-op */
	/* 0 = no cap. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(relay_caps_take(c, "alice", 0), 0);
	assert_int_equal(relay_caps_get(c, "alice"), 10);
	/* Keys at 0 go away; many keys grow the table. */
	for (int i = 0; i < 10; i++)
		relay_caps_put(c, "alice");
	assert_int_equal(relay_caps_get(c, "alice"), 0);
	assert_int_equal(relay_caps_size(c), 2);
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "user%d", i);
		assert_int_equal(relay_caps_take(c, key, 1), 0);
	}
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "user%d", i);
		assert_int_equal(relay_caps_take(c, key, 1), -EDQUOT);
		relay_caps_put(c, key);
	}
	assert_int_equal(relay_caps_size(c), 2);
	relay_caps_free(c);
	relay_caps_free(NULL);
}

static void
test_end_names(void **state)
{
	(void)state;
	assert_string_equal(relay_end_name(RELAY_END_IDLE), "idle");
	assert_string_equal(relay_end_name(RELAY_END_QUOTA_BYTES), "quota_bytes");
	assert_string_equal(relay_end_name(RELAY_END_QUOTA_TIME), "quota_time");
	assert_string_equal(relay_end_name(RELAY_END_SHUTDOWN), "shutdown");
	assert_string_equal(relay_end_name((enum relay_end)99), "unknown");
	for (int i = 0; i < RELAY_REF__N; i++)
		assert_non_null(relay_refusal_names[i]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mbox_order_dup_gap),
		cmocka_unit_test(test_mbox_cap),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_end_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
