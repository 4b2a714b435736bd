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

/* Fold the space-separated names of list and compare with want. */
static void expect_fold(const char *list, const char *want)
{
	char copy[1024], *names[64], *save = NULL, *folded;
	size_t n = 0;

	snprintf(copy, sizeof(copy), "%s", list);
	for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
		names[n++] = w;
	folded = hostlist_fold((const char *const *)names, n);
	assert_non_null(folded);
	if (strcmp(folded, want))
		fail_msg("fold '%s': got '%s', want '%s'", list, folded, want);
	free(folded);
}

static void test_fold(void **state)
{
	(void)state;
	expect_fold("host01 host02 host03 host05", "host[01-03,05]");
	/* any order, repeats dropped */
	expect_fold("web22 web03 web01 web02 web03", "web[01-03,22]");
	/* padded and unpadded numbers of the same length are one range */
	expect_fold("web08 web09 web10 web11", "web[08-11]");
	expect_fold("web9 web10 web11", "web[9-11]");
	/* different padding: different groups */
	expect_fold("n1 n01", "n1,n01");
	/* the last number varies; the rest must match */
	expect_fold("r1n1 r1n2 r2n1", "r1n[1-2],r2n1");
	expect_fold("web1.lan web2.lan web1.dc", "web[1-2].lan,web1.dc");
	/* names without digits stay, in order of first appearance */
	expect_fold("local fork local/local db3", "local,fork,local/local,db3");
	expect_fold("ssh:web1/sudo ssh:web2/sudo", "ssh:web[1-2]/sudo");
	expect_fold("single7", "single7");
	expect_fold("", "");
}

/* fold(expand(x)) == x for the ranges an operator writes. */
static void test_fold_round_trip(void **state)
{
	static const char *const forms[] = {
		"web[01-20,22]", "db[1,3,5]", "node[1-3,10]", "x[008-011]",
		"host[1-100]",
	};

	(void)state;
	for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
		char **v = NULL, why[256] = "", *folded;
		int n = hostlist_expand(forms[f], strlen(forms[f]), 1024, &v, why,
					sizeof(why));

		assert_true(n > 0);
		folded = hostlist_fold((const char *const *)v, (size_t)n);
		assert_non_null(folded);
		assert_string_equal(folded, forms[f]);
		free(folded);
		hostlist_free(v, (size_t)n);
	}
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
		cmocka_unit_test(test_fold),
		cmocka_unit_test(test_fold_round_trip),
	};

	mg_main(argc, argv);
	return MG_TEST_RUN("tools/hostlist", tests);
}
