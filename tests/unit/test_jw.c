// SPDX-License-Identifier: MIT
/* Unit tests for common/jw: the hot-path JSON writer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"

static char *
render_object(const char *key, const char *value)
{
	struct jw w;
	jw_init(&w, 4); /* tiny on purpose: growth is exercised */
	jw_lit(&w, "{");
	jw_key(&w, false, key);
	jw_str(&w, value);
	jw_key(&w, true, "n");
	jw_int(&w, -1234567890123LL);
	jw_key(&w, true, "d");
	jw_double(&w, 39.9042);
	jw_key(&w, true, "inf");
	jw_double(&w, INFINITY);
	jw_key(&w, true, "b");
	jw_bool(&w, true);
	jw_key(&w, true, "nul");
	jw_str(&w, NULL);
	jw_lit(&w, "}");
	return jw_finish(&w, NULL);
}

/* Whatever bytes a string holds, the output parses back to the same string. */
static void
test_escaping_round_trip(void **state)
{
	static const char *const samples[] = {
		"plain",     "quote\" and \\ backslash", "ctl\x01\x1f\n\r\t", "北京 Zürich", "",
		"</script>",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		char *text = render_object("s", samples[i]);
		json_error_t err;
		assert_non_null(text);
		json_t *j = json_loads(text, 0, &err);
		if (!j)
			fail_msg("not JSON (%s): %s", err.text, text);
		assert_string_equal(json_string_value(json_object_get(j, "s")), samples[i]);
		assert_int_equal(json_integer_value(json_object_get(j, "n")), -1234567890123LL);
		assert_true(fabs(json_number_value(json_object_get(j, "d")) - 39.9042) < 1e-9);
		assert_true(json_is_null(json_object_get(j, "inf")));
		assert_true(json_is_true(json_object_get(j, "b")));
		assert_true(json_is_null(json_object_get(j, "nul")));
		json_decref(j);
		free(text);
	}
}

static void
test_exact_text(void **state)
{
	struct jw w;
	size_t len;
	(void)state;
	jw_init(&w, 0);
	jw_lit(&w, "[");
	jw_str(&w, "a\"b");
	jw_lit(&w, ",");
	jw_int(&w, 0);
	jw_lit(&w, ",");
	jw_bool(&w, false);
	jw_lit(&w, "]");
	char *text = jw_finish(&w, &len);
	assert_string_equal(text, "[\"a\\\"b\",0,false]");
	assert_int_equal(len, strlen(text));
	free(text);
}

static void
test_large_growth(void **state)
{
	struct jw w;
	size_t len;
	char big[5000];
	(void)state;
	memset(big, '\x02', sizeof(big) - 1); /* every byte escapes to six */
	big[sizeof(big) - 1] = '\0';
	jw_init(&w, 1);
	jw_str(&w, big);
	char *text = jw_finish(&w, &len);
	assert_non_null(text);
	assert_int_equal(len, (sizeof(big) - 1) * 6 + 2);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escaping_round_trip),
		cmocka_unit_test(test_exact_text),
		cmocka_unit_test(test_large_growth),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
