// SPDX-License-Identifier: MIT
/*
 * core/value_json.c: mg_value_to_json() and mg_value_to_json_alloc(), the
 * JSON text of a value for logs, audit lines and the tool's output. Owns
 * the text form only: it reads values through their public fields and never
 * prints a secret.
 *
 * Output is compact (no spaces). Strings are escaped (short escapes for
 * \b \f \n \r \t, \u00XX for other control characters and DEL) and written
 * as UTF-8; an invalid byte inside a str becomes \ufffd. JSON object keys
 * must be strings: str keys print as they are, nil/bool/int/float keys as
 * their text in quotes (as Python's json does), other keys as their JSON
 * text escaped into a string (a key inside such a key only as "<type>",
 * which keeps the text linear in the size of the value).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mitogen/value.h>
#include "core/value.h"

struct value_json {
	char *buf;
	size_t size; /* bytes of buf */
	size_t len; /* bytes the text needs so far */
	/* Levels of string escaping in force (inside non-string map keys):
	 * 0 or 1, see value_json_key(). */
	unsigned level;
	bool grow; /* buf is malloc'd and grows (mg_value_to_json_alloc) */
	bool nomem;
	/* value_json_stream: buf is a fixed window, handed to sink when full */
	void (*sink)(void *arg, const char *s, size_t n);
	void *sink_arg;
	size_t fill; /* bytes of buf not yet handed to sink */
};

static void value_json_flush(struct value_json *w)
{
	if (w->fill)
		w->sink(w->sink_arg, w->buf, w->fill);
	w->fill = 0;
}

/* Append n raw bytes, keeping room for the NUL. */
static void value_json_raw(struct value_json *w, const char *s, size_t n)
{
	size_t room, cap;
	char *buf;

	if (w->sink) {
		w->len += n;
		while (n) {
			size_t k = w->size - w->fill < n ? w->size - w->fill : n;

			memcpy(w->buf + w->fill, s, k);
			w->fill += k;
			s += k;
			n -= k;
			if (w->fill == w->size)
				value_json_flush(w);
		}
		return;
	}
	if (w->grow && !w->nomem && w->len + n + 1 > w->size) {
		cap = w->size * 2;
		if (cap < w->len + n + 1)
			cap = w->len + n + 1;
		buf = realloc(w->buf, cap);
		if (buf) {
			w->buf = buf;
			w->size = cap;
		} else {
			w->nomem = true;
		}
	}
	room = w->size && w->len < w->size - 1 ? w->size - 1 - w->len : 0;
	if (room)
		memcpy(w->buf + w->len, s, n < room ? n : room);
	w->len += n;
}

/* Append JSON text s[0..n), escaped once when inside a non-string key. */
static void value_json_put(struct value_json *w, const char *s, size_t n)
{
	size_t i;

	if (!w->level) {
		value_json_raw(w, s, n);
		return;
	}
	for (i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			value_json_raw(w, "\\", 1);
		value_json_raw(w, s + i, 1);
	}
}

static void value_json_puts(struct value_json *w, const char *s)
{
	value_json_put(w, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 (value.h). */
size_t value_utf8_len(const uint8_t *s, size_t n)
{
	uint8_t c = s[0], lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	/* No overlong forms, no surrogates, nothing past U+10FFFF. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

static bool value_utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0, k;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		k = value_utf8_len(s + i, n - i);
		if (!k)
			return false;
		i += k;
	}
	return true;
}

/* A JSON string of s[0..n); invalid UTF-8 bytes become U+FFFD. */
static void value_json_string(struct value_json *w, const uint8_t *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0, run = 0, k;
	char esc[7];

	value_json_put(w, "\"", 1);
	while (i < n) {
		uint8_t c = s[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			i++;
			continue;
		}
		if (c >= 0x80 && (k = value_utf8_len(s + i, n - i))) {
			i += k;
			continue;
		}
		value_json_put(w, (const char *)s + run, i - run);
		switch (c) {
		case '"':
		case '\\':
			esc[0] = '\\';
			esc[1] = (char)c;
			value_json_put(w, esc, 2);
			break;
		case '\b':
			value_json_put(w, "\\b", 2);
			break;
		case '\f':
			value_json_put(w, "\\f", 2);
			break;
		case '\n':
			value_json_put(w, "\\n", 2);
			break;
		case '\r':
			value_json_put(w, "\\r", 2);
			break;
		case '\t':
			value_json_put(w, "\\t", 2);
			break;
		default:
			if (c >= 0x80) {
				value_json_put(w, "\\ufffd", 6);
				break;
			}
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			value_json_put(w, esc, 6);
			break;
		}
		run = ++i;
	}
	value_json_put(w, (const char *)s + run, i - run);
	value_json_put(w, "\"", 1);
}

static void value_json_cstr(struct value_json *w, const char *s)
{
	value_json_string(w, (const uint8_t *)s, strlen(s));
}

static void value_json_base64(struct value_json *w, const uint8_t *s, size_t n)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char out[4];
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		out[0] = b64[s[i] >> 2];
		out[1] = b64[(s[i] & 3) << 4 | s[i + 1] >> 4];
		out[2] = b64[(s[i + 1] & 15) << 2 | s[i + 2] >> 6];
		out[3] = b64[s[i + 2] & 63];
		value_json_put(w, out, 4);
	}
	if (i < n) {
		out[0] = b64[s[i] >> 2];
		if (i + 1 < n) {
			out[1] = b64[(s[i] & 3) << 4 | s[i + 1] >> 4];
			out[2] = b64[(s[i + 1] & 15) << 2];
		} else {
			out[1] = b64[(s[i] & 3) << 4];
			out[2] = '=';
		}
		out[3] = '=';
		value_json_put(w, out, 4);
	}
}

static locale_t value_json_locale;
static pthread_once_t value_json_locale_once = PTHREAD_ONCE_INIT;

static void value_json_locale_init(void)
{
	value_json_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/*
 * %.17g with a '.' whatever LC_NUMERIC the program set; an integral value
 * keeps a ".0" so it reads back as a float. NaN and infinities are null.
 */
static void value_json_float(struct value_json *w, double f)
{
	locale_t old = (locale_t)0;
	char tmp[40];

	if (!isfinite(f)) {
		value_json_puts(w, "null");
		return;
	}
	pthread_once(&value_json_locale_once, value_json_locale_init);
	if (value_json_locale)
		old = uselocale(value_json_locale);
	snprintf(tmp, sizeof(tmp), "%.17g", f);
	if (old)
		uselocale(old);
	if (!strpbrk(tmp, ".eE"))
		strcat(tmp, ".0");
	value_json_puts(w, tmp);
}

static void value_json_uint(struct value_json *w, uint32_t u)
{
	char tmp[16];

	snprintf(tmp, sizeof(tmp), "%" PRIu32, u);
	value_json_puts(w, tmp);
}

static void value_json_value(struct value_json *w, const struct mg_value *v);

static void value_json_key(struct value_json *w, const struct mg_value *k)
{
	switch (k->type) {
	case MG_STR:
	case MG_SECRET:
		value_json_value(w, k);
		return;
	case MG_BYTES:
		if (value_utf8_valid(k->bytes, k->len)) {
			value_json_value(w, k);
			return;
		}
		break;
	case MG_NIL:
	case MG_BOOL:
	case MG_INT:
	case MG_FLOAT:
		/* Their text needs no escaping. */
		value_json_put(w, "\"", 1);
		value_json_value(w, k);
		value_json_put(w, "\"", 1);
		return;
	default:
		break;
	}
	value_json_put(w, "\"", 1);
	if (w->level) {
		/*
		 * A key inside a key prints as its type only: each level of
		 * escaping doubles every '"' and '\\', so 40 levels of maps
		 * as keys (80 bytes of msgpack) would make terabytes of text.
		 */
		value_json_put(w, "<", 1);
		value_json_puts(w, mg_type_name(k->type));
		value_json_put(w, ">", 1);
	} else {
		w->level++;
		value_json_value(w, k);
		w->level--;
	}
	value_json_put(w, "\"", 1);
}

static void value_json_value(struct value_json *w, const struct mg_value *v)
{
	char tmp[32];
	uint32_t i;

	switch (v->type) {
	case MG_NIL:
		value_json_puts(w, "null");
		break;
	case MG_BOOL:
		value_json_puts(w, v->b ? "true" : "false");
		break;
	case MG_INT:
		snprintf(tmp, sizeof(tmp), "%" PRId64, v->i);
		value_json_puts(w, tmp);
		break;
	case MG_FLOAT:
		value_json_float(w, v->f);
		break;
	case MG_STR:
		value_json_string(w, (const uint8_t *)v->str, v->len);
		break;
	case MG_SECRET:
		value_json_puts(w, "\"<secret>\"");
		break;
	case MG_BYTES:
		if (value_utf8_valid(v->bytes, v->len)) {
			value_json_string(w, v->bytes, v->len);
			break;
		}
		value_json_puts(w, "{\"$bytes\":\"");
		value_json_base64(w, v->bytes, v->len);
		value_json_puts(w, "\"}");
		break;
	case MG_LIST:
		value_json_put(w, "[", 1);
		for (i = 0; i < v->len; i++) {
			if (i)
				value_json_put(w, ",", 1);
			value_json_value(w, &v->items[i]);
		}
		value_json_put(w, "]", 1);
		break;
	case MG_MAP:
		value_json_put(w, "{", 1);
		for (i = 0; i < v->len; i++) {
			if (i)
				value_json_put(w, ",", 1);
			value_json_key(w, &v->items[2 * i]);
			value_json_put(w, ":", 1);
			value_json_value(w, &v->items[2 * i + 1]);
		}
		value_json_put(w, "}", 1);
		break;
	case MG_CONTEXT:
		value_json_puts(w, "{\"$context\":");
		value_json_uint(w, v->ref.context_id);
		value_json_put(w, "}", 1);
		break;
	case MG_SENDER:
		value_json_puts(w, "{\"$sender\":[");
		value_json_uint(w, v->ref.context_id);
		value_json_put(w, ",", 1);
		value_json_uint(w, v->ref.handle);
		value_json_puts(w, "]}");
		break;
	case MG_ERROR:
		value_json_puts(w, "{\"$error\":{\"kind\":");
		value_json_cstr(w, mg_error_kind_name(v->err.kind));
		snprintf(tmp, sizeof(tmp),
			 ",\"errno\":%d,\"context\":", v->err.errnum);
		value_json_puts(w, tmp);
		value_json_cstr(w, v->err.context);
		value_json_puts(w, ",\"function\":");
		value_json_cstr(w, v->err.function);
		value_json_puts(w, ",\"message\":");
		value_json_cstr(w, v->err.message);
		value_json_puts(w, "}}");
		break;
	}
}

int mg_value_to_json(const struct mg_value *v, char *buf, size_t size)
{
	struct value_json w = { .buf = buf, .size = size };

	if (!v)
		return -ENOMEM;
	if (!buf && size)
		return -EINVAL;
	value_json_value(&w, v);
	if (size)
		buf[w.len < size ? w.len : size - 1] = '\0';
	return w.len > INT_MAX ? -EOVERFLOW : (int)w.len;
}

size_t value_json_stream(const struct mg_value *v, void (*sink)(void *arg, const char *s, size_t n),
			 void *arg)
{
	char buf[4096];
	struct value_json w = { .buf = buf, .size = sizeof(buf), .sink = sink, .sink_arg = arg };

	if (!v)
		return 0;
	value_json_value(&w, v);
	value_json_flush(&w);
	return w.len;
}

char *mg_value_to_json_alloc(const struct mg_value *v)
{
	struct value_json w = { .grow = true };

	if (!v) {
		errno = ENOMEM;
		return NULL;
	}
	w.size = 64;
	w.buf = malloc(w.size);
	if (!w.buf)
		return NULL;
	value_json_value(&w, v);
	if (w.nomem) {
		free(w.buf);
		errno = ENOMEM;
		return NULL;
	}
	w.buf[w.len] = '\0';
	return w.buf;
}
