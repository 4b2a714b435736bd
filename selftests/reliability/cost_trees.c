// SPDX-License-Identifier: MIT
/*
 * selftests/reliability/cost_trees.c — the focused measure of what process
 * trees (docs/reliability.md) cost: creating a local context and calling
 * it once, shutting it down, and mg.run of /bin/true. Not a test and not
 * in Kbuild: build it by hand against two trees and run them in turn,
 * several times (a shared machine's noise is larger than the difference):
 *
 *	cc -O2 -D_GNU_SOURCE -Iinclude -static -o /tmp/cost_trees \
 *	   selftests/reliability/cost_trees.c build/libmitogen.a \
 *	   -l:libmsgpackc.a -l:libseccomp.a -l:libcap.a -l:libnl-route-3.a \
 *	   -l:libnl-3.a -l:libz.a -l:libnettle.a -l:libbpf.a -l:libelf.a \
 *	   -l:libz.a -pthread
 *	/tmp/cost_trees
 *
 * Prints the median and the 10th percentile of 60 creations (create and
 * first mg.noop), the mean shutdown (mg_context_shutdown, waited for, one
 * after the other) and the mean of 200 mg.run ["/bin/true"] on one context.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <mitogen/mitogen.h>

#define N_CREATE 60
#define N_RUN 200

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct mg_error err = MG_ERROR_INIT;
	struct mg_context *c[N_CREATE];
	double t[N_CREATE], t0, shut, run;
	struct mg_router *r;

	mg_main(argc, argv);
	r = mg_router_new(NULL);
	if (!r)
		return 1;
	for (int i = 0; i < N_CREATE; i++) {
		MG_OPTS(mg_local_opts, lo, .remote_name = "cost");

		t0 = now();
		c[i] = mg_local(r, &lo, &err);
		if (!c[i] || mg_call(c[i], "mg.noop", NULL, NULL, &err) < 0) {
			fprintf(stderr, "%s\n", err.message);
			return 1;
		}
		t[i] = (now() - t0) * 1e3;
	}
	t0 = now();
	for (int i = 0; i < N_RUN; i++) {
		struct mg_value *v = NULL;

		if (mg_call(c[0], "mg.run", MG_LIST(MG_LIST(mg_str("/bin/true"))), &v, &err) < 0) {
			fprintf(stderr, "%s\n", err.message);
			return 1;
		}
		mg_value_free(v);
	}
	run = (now() - t0) / N_RUN * 1e6;
	t0 = now();
	for (int i = 0; i < N_CREATE; i++) {
		mg_context_shutdown(c[i], true);
		mg_context_unref(c[i]);
	}
	shut = (now() - t0) / N_CREATE * 1e3;
	qsort(t, N_CREATE, sizeof(t[0]), cmp);
	printf("create+call median %.2f ms p10 %.2f ms; shutdown %.2f ms; mg.run %.0f us\n",
	       t[N_CREATE / 2], t[N_CREATE / 10], shut, run);
	mg_router_unref(r);
	return 0;
}
