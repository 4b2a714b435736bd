// SPDX-License-Identifier: MIT
/*
 * core/value_format.c: mg_value_build() and mg_value_unpack(), the format
 * letters of value.h that turn C arguments into an argument list and back.
 * Uses only the public value API; does not touch value storage.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <mitogen/value.h>

#define VALUE_FORMAT_LETTERS "nbildsSyv"

/* One item for build letter c, taking its arguments from ap. */
static struct mg_value *value_build_item(char c, va_list *ap)
{
	const void *p;
	size_t n;

	switch (c) {
	case 'n':
		return mg_nil();
	case 'b':
		return mg_bool(va_arg(*ap, int));
	case 'i':
		return mg_int(va_arg(*ap, int));
	case 'l':
		return mg_int(va_arg(*ap, int64_t));
	case 'd':
		return mg_float(va_arg(*ap, double));
	case 's':
		return mg_str(va_arg(*ap, const char *));
	case 'S':
		return mg_secret(va_arg(*ap, const char *));
	case 'y':
		p = va_arg(*ap, const void *);
		n = va_arg(*ap, size_t);
		return mg_bytes(p, n);
	case 'v':
		p = va_arg(*ap, struct mg_value *);
		if (!p)
			errno = ENOMEM;
		return (struct mg_value *)p;
	}
	errno = EINVAL;
	return NULL;
}

struct mg_value *mg_value_build(const char *fmt, ...)
{
	struct mg_value *list, *item;
	size_t valid, i;
	va_list ap;
	int err = 0;

	if (!fmt) {
		errno = EINVAL;
		return NULL;
	}
	/*
	 * A bad letter is an error, but the arguments before it are still
	 * consumed so that the 'v' values among them are freed as promised;
	 * past a bad letter the argument types are unknown.
	 */
	valid = strspn(fmt, VALUE_FORMAT_LETTERS);
	if (fmt[valid])
		err = -EINVAL;
	list = mg_list();
	va_start(ap, fmt);
	for (i = 0; i < valid; i++) {
		errno = 0;
		item = value_build_item(fmt[i], &ap);
		if (err < 0) {
			mg_value_free(item);
			continue;
		}
		if (!item) {
			err = errno == EINVAL ? -EINVAL : -ENOMEM;
			continue;
		}
		err = mg_list_append(list, item);
	}
	va_end(ap);
	if (!list && !err)
		err = -ENOMEM;
	if (err < 0) {
		mg_value_free(list);
		errno = -err;
		return NULL;
	}
	return list;
}

static int value_unpack_fail(struct mg_error *err, int errnum, const char *fmt,
			     ...) __attribute__((format(printf, 3, 4)));

static int value_unpack_fail(struct mg_error *err, int errnum, const char *fmt,
			     ...)
{
	va_list ap;

	if (err) {
		mg_error_clear(err);
		err->kind = MG_ERR_CALL;
		err->errnum = errnum;
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return -errnum;
}

/* The type an unpack letter asks for, in the words of mg_type_name(). */
static const char *value_unpack_wants(char c)
{
	switch (c) {
	case 'n':
		return "nil";
	case 'b':
		return "bool";
	case 'i':
	case 'l':
		return "int";
	case 'd':
		return "float";
	case 's':
		return "str";
	case 'S':
		return "secret";
	case 'y':
		return "bytes";
	}
	return "value";
}

/*
 * Whether v fits letter c. 's' refuses a secret, so a secret only reaches
 * code that said it expects one ('S', which also takes a plain str).
 */
static bool value_unpack_fits(char c, const struct mg_value *v)
{
	switch (c) {
	case 'n':
		return v->type == MG_NIL;
	case 'b':
		return v->type == MG_BOOL;
	case 'i':
	case 'l':
		return v->type == MG_INT;
	case 'd':
		return v->type == MG_FLOAT || v->type == MG_INT;
	case 's':
		return v->type == MG_STR || v->type == MG_NIL;
	case 'S':
		return v->type == MG_SECRET || v->type == MG_STR ||
		       v->type == MG_NIL;
	case 'y':
		return v->type == MG_BYTES || v->type == MG_STR;
	}
	return true;
}

/* Store item v through the pointer(s) letter c takes from ap. */
static void value_unpack_store(char c, const struct mg_value *v, va_list *ap)
{
	const char *s = v->type == MG_NIL ? NULL : v->str;

	switch (c) {
	case 'b':
		*va_arg(*ap, bool *) = v->b;
		break;
	case 'i':
		*va_arg(*ap, int *) = (int)v->i;
		break;
	case 'l':
		*va_arg(*ap, int64_t *) = v->i;
		break;
	case 'd':
		*va_arg(*ap, double *) =
			v->type == MG_INT ? (double)v->i : v->f;
		break;
	case 's':
	case 'S':
		*va_arg(*ap, const char **) = s;
		break;
	case 'y':
		*va_arg(*ap, const void **) = v->bytes;
		*va_arg(*ap, size_t *) = v->len;
		break;
	case 'v':
		*va_arg(*ap, const struct mg_value **) = v;
		break;
	}
}

int mg_value_unpack(const struct mg_value *list, struct mg_error *err,
		    const char *fmt, ...)
{
	size_t required = 0, total = 0, i, k;
	const struct mg_value *v;
	bool optional = false;
	va_list ap;

	if (!fmt)
		return value_unpack_fail(err, EINVAL, "no format");
	if (!list)
		return value_unpack_fail(err, ENOMEM, "out of memory");
	if (list->type != MG_LIST)
		return value_unpack_fail(err, EINVAL,
					 "expected a list of arguments, got %s",
					 mg_type_name(list->type));
	for (i = 0; fmt[i]; i++) {
		if (fmt[i] == '|' && !optional) {
			optional = true;
			continue;
		}
		if (fmt[i] == '|' || !strchr(VALUE_FORMAT_LETTERS, fmt[i]))
			return value_unpack_fail(err, EINVAL,
						 "bad format character '%c'",
						 fmt[i]);
		total++;
		if (!optional)
			required++;
	}
	if (list->len < required || list->len > total) {
		if (required == total)
			return value_unpack_fail(
				err, EINVAL, "expected %zu argument%s, got %u",
				total, total == 1 ? "" : "s", list->len);
		return value_unpack_fail(
			err, EINVAL, "expected %zu to %zu arguments, got %u",
			required, total, list->len);
	}

	/* Check every item first: out-parameters are written only on success. */
	for (i = 0, k = 0; k < list->len; i++) {
		if (fmt[i] == '|')
			continue;
		v = &list->items[k++];
		if (!value_unpack_fits(fmt[i], v))
			return value_unpack_fail(
				err, EINVAL,
				"argument %zu: expected %s, got %s", k,
				value_unpack_wants(fmt[i]),
				mg_type_name(v->type));
		if (fmt[i] == 'i' && (v->i < INT_MIN || v->i > INT_MAX))
			return value_unpack_fail(
				err, EINVAL,
				"argument %zu: int %lld out of range", k,
				(long long)v->i);
	}

	va_start(ap, fmt);
	for (i = 0, k = 0; k < list->len; i++) {
		if (fmt[i] == '|')
			continue;
		value_unpack_store(fmt[i], &list->items[k++], &ap);
	}
	va_end(ap);
	return 0;
}
