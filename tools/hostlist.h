/* SPDX-License-Identifier: MIT */
/*
 * tools/hostlist.h — pdsh's host range syntax, for -t.
 *
 *	web[01-03]		web01 web02 web03
 *	db[1,3,5]		db1 db3 db5
 *	r[1-2]n[8-9]		r1n8 r1n9 r2n8 r2n9
 *	node[1-3,10]		node1 node2 node3 node10
 *
 * A bracket group is a range only when it holds nothing but digits, ','
 * and '-'; any other group ("[::1]", an IPv6 literal) is kept as written.
 * A range whose low end has leading zeros pads every number to its width.
 */
#ifndef TOOLS_HOSTLIST_H
#define TOOLS_HOSTLIST_H

#include <stddef.h>

/*
 * Expand text[0..len) into *ret, an array of malloc'd strings in order
 * (free with hostlist_free). Returns the count (>= 1); -EINVAL with a
 * one-line reason in why for a malformed group (empty, reversed,
 * unclosed, number too long); -E2BIG when it would make more than max
 * names; -ENOMEM.
 */
int hostlist_expand(const char *text, size_t len, size_t max, char ***ret,
		    char *why, size_t why_size);
void hostlist_free(char **v, size_t n);
/*
 * Fold names[0..n) back into pdsh's range syntax, the inverse of
 * hostlist_expand: "web01 web02 web03 web05" -> "web[01-03,05]". Names
 * are grouped by what comes before and after their last run of digits
 * (and by its zero-padded width: web01..web10 fold to web[01-10],
 * web9 web10 to web[9-10]); groups come out in the order of their first
 * name, numbers sorted and repeats dropped; a name without digits, or
 * one whose number is too long for a range, stays as it is. The result
 * joins the groups with ','; the caller frees it. Returns NULL with
 * errno ENOMEM (or EINVAL for a NULL names with n > 0).
 */
char *hostlist_fold(const char *const *names, size_t n);
/* Length of the next ','-separated item of text[0..len), not counting
 * commas inside brackets. */
size_t hostlist_item_len(const char *text, size_t len);

#endif
