// SPDX-License-Identifier: MIT
/*
 * tools/json_args.c — a small strict JSON parser producing mg_value, used by
 * `mitogen call` for its arguments (see json_args.h for the rules).
 *
 * Owns: parsing one NUL-terminated argument. Must not touch: anything
 * outside the tool; the library has its own value code and JSON writer.
 * Recursion is bounded by JSON_ARGS_MAX_DEPTH.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/json_args.h"

struct json_args_parser {
	const char *p;
	int depth;
	/* 0, EINVAL (not JSON), E2BIG (too deep) or ENOMEM */
	int err;
};

static struct mg_value *json_args_value(struct json_args_parser *ps);

static struct mg_value *json_args_fail(struct json_args_parser *ps, int err)
{
	if (!ps->err)
		ps->err = err;
	return NULL;
}

static void json_args_ws(struct json_args_parser *ps)
{
	while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' ||
	       *ps->p == '\r')
		ps->p++;
}

static struct mg_value *json_args_literal(struct json_args_parser *ps,
					  const char *word,
					  struct mg_value *(*make)(void), int b)
{
	size_t n = strlen(word);

	if (strncmp(ps->p, word, n) != 0)
		return json_args_fail(ps, EINVAL);
	ps->p += n;
	if (make)
		return make();
	return mg_bool(b);
}

/* --- numbers ---------------------------------------------------------- */

static bool json_args_digit(char c)
{
	return c >= '0' && c <= '9';
}

static struct mg_value *json_args_number(struct json_args_parser *ps)
{
	const char *start = ps->p, *s = ps->p;
	bool neg = false, integral = true;
	uint64_t mag = 0;
	bool overflow = false;

	if (*s == '-') {
		neg = true;
		s++;
	}
	if (*s == '0') {
		s++;
	} else if (json_args_digit(*s)) {
		while (json_args_digit(*s)) {
			unsigned d = *s++ - '0';

			if (mag > (UINT64_MAX - d) / 10)
				overflow = true;
			else
				mag = mag * 10 + d;
		}
	} else {
		return json_args_fail(ps, EINVAL);
	}
	if (*s == '.') {
		integral = false;
		s++;
		if (!json_args_digit(*s))
			return json_args_fail(ps, EINVAL);
		while (json_args_digit(*s))
			s++;
	}
	if (*s == 'e' || *s == 'E') {
		integral = false;
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!json_args_digit(*s))
			return json_args_fail(ps, EINVAL);
		while (json_args_digit(*s))
			s++;
	}
	ps->p = s;

	if (integral && !overflow) {
		if (!neg && mag <= INT64_MAX)
			return mg_int((int64_t)mag);
		if (neg && mag <= (uint64_t)INT64_MAX + 1)
			return mg_int(mag == (uint64_t)INT64_MAX + 1 ?
					      INT64_MIN :
					      -(int64_t)mag);
	}

	/* A fraction, an exponent or an integer beyond int64: a double. The
	 * grammar was checked above, so strtod reads exactly [start, s). */
	char buf[512];
	size_t n = s - start;
	char *copy = n < sizeof(buf) ? buf : malloc(n + 1);
	double d;

	if (!copy)
		return json_args_fail(ps, ENOMEM);
	memcpy(copy, start, n);
	copy[n] = '\0';
	d = strtod(copy, NULL);
	if (copy != buf)
		free(copy);
	/* JSON has no infinity: 1e400 is not a number we can pass on. */
	if (isinf(d))
		return json_args_fail(ps, EINVAL);
	return mg_float(d);
}

/* --- strings ---------------------------------------------------------- */

struct json_args_buf {
	char *p;
	size_t len;
	size_t cap;
};

static int json_args_put(struct json_args_buf *b, const char *s, size_t n)
{
	if (b->cap - b->len < n + 1) {
		size_t ncap = b->cap ? b->cap : 64;
		char *p;

		while (ncap - b->len < n + 1)
			ncap *= 2;
		p = realloc(b->p, ncap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* Append code point cp (valid, not a surrogate) as UTF-8. */
static int json_args_put_cp(struct json_args_buf *b, uint32_t cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = 0xc0 | (cp >> 6);
		u[1] = 0x80 | (cp & 0x3f);
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = 0xe0 | (cp >> 12);
		u[1] = 0x80 | ((cp >> 6) & 0x3f);
		u[2] = 0x80 | (cp & 0x3f);
		n = 3;
	} else {
		u[0] = 0xf0 | (cp >> 18);
		u[1] = 0x80 | ((cp >> 12) & 0x3f);
		u[2] = 0x80 | ((cp >> 6) & 0x3f);
		u[3] = 0x80 | (cp & 0x3f);
		n = 4;
	}
	return json_args_put(b, u, n);
}

/* Four hex digits at s, or -1. */
static int32_t json_args_hex4(const char *s)
{
	int32_t v = 0;

	for (int i = 0; i < 4; i++) {
		char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/*
 * Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF), or 0.
 */
static size_t json_args_utf8_len(const unsigned char *s)
{
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (s[0] >= 0xe0 && s[0] <= 0xef) {
		unsigned char lo = s[0] == 0xe0 ? 0xa0 : 0x80;
		unsigned char hi = s[0] == 0xed ? 0x9f : 0xbf;

		if (s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80)
			return 0;
		return 3;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		unsigned char lo = s[0] == 0xf0 ? 0x90 : 0x80;
		unsigned char hi = s[0] == 0xf4 ? 0x8f : 0xbf;

		if (s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		return 4;
	}
	return 0;
}

/* Parse a string at ps->p (on the opening quote) into a new buffer. */
static int json_args_string_raw(struct json_args_parser *ps,
				struct json_args_buf *b)
{
	const char *s = ps->p + 1;
	int rc = 0;

	/* an empty string still needs its NUL */
	if (json_args_put(b, "", 0) < 0)
		return -ENOMEM;
	for (;;) {
		unsigned char c = *s;

		if (c == '"') {
			s++;
			break;
		} else if (c < 0x20) {
			/* NUL (end of text) or an unescaped control char */
			return -EINVAL;
		} else if (c == '\\') {
			const char *esc = NULL;
			int32_t cp;

			switch (s[1]) {
			case '"':
				esc = "\"";
				break;
			case '\\':
				esc = "\\";
				break;
			case '/':
				esc = "/";
				break;
			case 'b':
				esc = "\b";
				break;
			case 'f':
				esc = "\f";
				break;
			case 'n':
				esc = "\n";
				break;
			case 'r':
				esc = "\r";
				break;
			case 't':
				esc = "\t";
				break;
			case 'u':
				cp = json_args_hex4(s + 2);
				if (cp < 0)
					return -EINVAL;
				s += 6;
				if (cp >= 0xd800 && cp <= 0xdbff) {
					int32_t lo = -1;

					if (s[0] == '\\' && s[1] == 'u')
						lo = json_args_hex4(s + 2);
					if (lo < 0xdc00 || lo > 0xdfff)
						return -EINVAL;
					s += 6;
					cp = 0x10000 + ((cp - 0xd800) << 10) +
					     (lo - 0xdc00);
				} else if (cp >= 0xdc00 && cp <= 0xdfff) {
					return -EINVAL;
				} else if (cp == 0) {
					/* mg_value strings are C strings */
					return -EINVAL;
				}
				rc = json_args_put_cp(b, cp);
				break;
			default:
				return -EINVAL;
			}
			if (esc) {
				rc = json_args_put(b, esc, 1);
				s += 2;
			}
		} else {
			size_t n = json_args_utf8_len((const unsigned char *)s);

			if (n == 0)
				return -EINVAL;
			rc = json_args_put(b, s, n);
			s += n;
		}
		if (rc < 0)
			return rc;
	}
	ps->p = s;
	return 0;
}

static struct mg_value *json_args_string(struct json_args_parser *ps)
{
	struct json_args_buf b = { 0 };
	struct mg_value *v;
	int rc = json_args_string_raw(ps, &b);

	if (rc < 0) {
		free(b.p);
		return json_args_fail(ps, -rc);
	}
	v = mg_strn(b.p, b.len);
	free(b.p);
	return v ? v : json_args_fail(ps, ENOMEM);
}

/* --- containers ------------------------------------------------------- */

static struct mg_value *json_args_array(struct json_args_parser *ps)
{
	struct mg_value *list = mg_list();

	if (!list)
		return json_args_fail(ps, ENOMEM);
	ps->p++;
	json_args_ws(ps);
	if (*ps->p == ']') {
		ps->p++;
		return list;
	}
	for (;;) {
		struct mg_value *item = json_args_value(ps);

		if (!item)
			goto fail;
		if (mg_list_append(list, item) < 0) {
			json_args_fail(ps, ENOMEM);
			goto fail;
		}
		json_args_ws(ps);
		if (*ps->p == ',') {
			ps->p++;
			continue;
		}
		if (*ps->p == ']') {
			ps->p++;
			return list;
		}
		json_args_fail(ps, EINVAL);
		goto fail;
	}
fail:
	mg_value_free(list);
	return NULL;
}

static struct mg_value *json_args_object(struct json_args_parser *ps)
{
	struct mg_value *map = mg_map();

	if (!map)
		return json_args_fail(ps, ENOMEM);
	ps->p++;
	json_args_ws(ps);
	if (*ps->p == '}') {
		ps->p++;
		return map;
	}
	for (;;) {
		struct json_args_buf key = { 0 };
		struct mg_value *value;
		int rc;

		json_args_ws(ps);
		if (*ps->p != '"') {
			json_args_fail(ps, EINVAL);
			goto fail;
		}
		rc = json_args_string_raw(ps, &key);
		if (rc < 0) {
			free(key.p);
			json_args_fail(ps, -rc);
			goto fail;
		}
		json_args_ws(ps);
		if (*ps->p != ':') {
			free(key.p);
			json_args_fail(ps, EINVAL);
			goto fail;
		}
		ps->p++;
		value = json_args_value(ps);
		if (!value) {
			free(key.p);
			goto fail;
		}
		rc = mg_map_set(map, key.p, value);
		free(key.p);
		if (rc < 0) {
			json_args_fail(ps, ENOMEM);
			goto fail;
		}
		json_args_ws(ps);
		if (*ps->p == ',') {
			ps->p++;
			continue;
		}
		if (*ps->p == '}') {
			ps->p++;
			return map;
		}
		json_args_fail(ps, EINVAL);
		goto fail;
	}
fail:
	mg_value_free(map);
	return NULL;
}

/* Any value, with leading whitespace; NULL with ps->err set on failure. */
static struct mg_value *json_args_value(struct json_args_parser *ps)
{
	struct mg_value *v;

	json_args_ws(ps);
	switch (*ps->p) {
	case '{':
	case '[':
		if (ps->depth >= JSON_ARGS_MAX_DEPTH)
			return json_args_fail(ps, E2BIG);
		ps->depth++;
		v = *ps->p == '{' ? json_args_object(ps) : json_args_array(ps);
		ps->depth--;
		return v;
	case '"':
		return json_args_string(ps);
	case 'n':
		return json_args_literal(ps, "null", mg_nil, 0);
	case 't':
		return json_args_literal(ps, "true", NULL, 1);
	case 'f':
		return json_args_literal(ps, "false", NULL, 0);
	default:
		return json_args_number(ps);
	}
}

struct mg_value *json_args_parse(const char *text, bool *ret_is_json)
{
	struct json_args_parser ps = { .p = text };
	struct mg_value *v;

	if (!text) {
		errno = EINVAL;
		return NULL;
	}
	v = json_args_value(&ps);
	if (v) {
		json_args_ws(&ps);
		if (*ps.p != '\0') {
			/* trailing garbage: "1 2", "[1]x" */
			mg_value_free(v);
			v = NULL;
			ps.err = EINVAL;
		}
	} else if (!ps.err) {
		/* a constructor ran out of memory */
		ps.err = ENOMEM;
	}
	if (v) {
		if (ret_is_json)
			*ret_is_json = true;
		return v;
	}
	if (ps.err != EINVAL) {
		errno = ps.err;
		return NULL;
	}
	v = mg_str(text);
	if (!v) {
		errno = ENOMEM;
		return NULL;
	}
	if (ret_is_json)
		*ret_is_json = false;
	return v;
}
