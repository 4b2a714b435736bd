// SPDX-License-Identifier: MIT
/*
 * selftests/tools/test_hostlist.c — pdsh host ranges as -t reads them:
 * what each form expands to, in order, and the reason given for each
 * malformed one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mitogen/mitogen.h>

#include "tools/hostlist.h"

/* cmocka.h needs these first. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "selftests/lib/harness.h"

/* Expand text and compare with the space-separated names of want. */
static void expect(const char *text, const char *want)
{
	char **v = NULL, why[256] = "", got[4096] = "";
	int n = hostlist_expand(text, strlen(text), 1024, &v, why, sizeof(why));
	size_t used = 0;

	if (n < 0)
		fail_msg("'%s': %s (%s)", text, strerror(-n), why);
	for (int i = 0; i < n; i++)
		used += (size_t)snprintf(got + used, sizeof(got) - used, "%s%s",
					 i ? " " : "", v[i]);
	hostlist_free(v, (size_t)n);
	assert_string_equal(got, want);
}

/* Expect text to fail with rc and a reason containing needle. */
static void expect_error(const char *text, int rc, const char *needle)
{
	char **v = NULL, why[256] = "";
	int n = hostlist_expand(text, strlen(text), 1024, &v, why, sizeof(why));

	assert_int_equal(n, rc);
	assert_null(v);
	if (!strstr(why, needle))
		fail_msg("'%s': reason '%s' lacks '%s'", text, why, needle);
}

static void test_plain_names(void **state)
{
	(void)state;
	expect("web1", "web1");
	expect("ssh:deploy@web1:2222/sudo:root", "ssh:deploy@web1:2222/sudo:root");
	/* not a range: an IPv6 literal stays as written */
	expect("ssh:[::1]:22", "ssh:[::1]:22");
	expect("ssh:user@[fe80::1%eth0]", "ssh:user@[fe80::1%eth0]");
}

static void test_ranges(void **state)
{
	(void)state;
	expect("web[1-3]", "web1 web2 web3");
	expect("web[01-03]", "web01 web02 web03");
	expect("web[08-11]", "web08 web09 web10 web11");
	expect("web[9-11]", "web9 web10 web11");
	expect("db[1,3,5]", "db1 db3 db5");
	expect("node[1-2,10]", "node1 node2 node10");
	expect("n[007]", "n007");
	/* several groups: the last varies fastest */
	expect("r[1-2]n[8-9]", "r1n8 r1n9 r2n8 r2n9");
	/* anywhere in a chain */
	expect("ssh:bastion/ssh:web[1-2].lan/sudo:root",
	       "ssh:bastion/ssh:web1.lan/sudo:root ssh:bastion/ssh:web2.lan/sudo:root");
}

static void test_malformed(void **state)
{
	(void)state;
	expect_error("web[]", -EINVAL, "empty range");
	expect_error("web[3-1]", -EINVAL, "backwards");
	expect_error("web[1-3", -EINVAL, "'[' without ']'");
	expect_error("web1-3]", -EINVAL, "']' without '['");
	expect_error("web[1-]", -EINVAL, "bad range");
	expect_error("web[,1]", -EINVAL, "bad range");
	expect_error("web[1,]", -EINVAL, "bad range");
	expect_error("web[1--3]", -EINVAL, "bad range");
	expect_error("web[1234567890]", -EINVAL, "at most 9 digits");
	expect_error("a[[1]]", -EINVAL, "nested");
}

static void test_too_many(void **state)
{
	(void)state;
	/* refused before anything is made: no time, no memory */
	expect_error("web[1-1025]", -E2BIG, "more than 1024");
	expect_error("a[1-999999999]b[1-999999999]", -E2BIG, "more than 1024");
	expect_error("a[1-32]b[1-33]", -E2BIG, "more than 1024");
}

static void test_exactly_the_limit(void **state)
{
	char **v = NULL, why[256];
	int n;

	(void)state;
	n = hostlist_expand("a[1-32]b[01-32]", 15, 1024, &v, why, sizeof(why));
	assert_int_equal(n, 1024);
	assert_string_equal(v[0], "a1b01");
	assert_string_equal(v[33], "a2b02");
	assert_string_equal(v[1023], "a32b32");
	hostlist_free(v, (size_t)n);
}

static void test_item_split(void **state)
{
	const char *s = "db[1,3],web1,ssh:x/sudo";

	(void)state;
	assert_int_equal(hostlist_item_len(s, strlen(s)), 7);
	assert_int_equal(hostlist_item_len(s + 8, strlen(s + 8)), 4);
	assert_int_equal(hostlist_item_len("abc", 3), 3);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_names),
		cmocka_unit_test(test_ranges),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_too_many),
		cmocka_unit_test(test_exactly_the_limit),
		cmocka_unit_test(test_item_split),
	};

	mg_main(argc, argv);
	return MG_TEST_RUN("tools/hostlist", tests);
}
