// SPDX-License-Identifier: MIT
/*
 * profiles.c — the built-in seccomp profiles. Owns nothing but their
 * text: the policies themselves are data, sandbox/profiles/NAME.policy,
 * embedded here byte for byte at build time (.incbin; the Makefile makes
 * this object depend on them) and parsed by seccomp.c like any rule file.
 * selftests/sandbox parses every built-in profile (the lint).
 */
#include <string.h>

#include "sandbox/sandbox.h"

/*
 * The profiles refuse CLONE_NEW* by testing clone's flags as arg0, which
 * holds on x86_64 and aarch64 (and i386/arm: CLONE_BACKWARDS keeps flags
 * first), not on s390 (flags in arg1) nor wherever else the order is
 * turned: a port must change those rules, not only build them.
 */
#if !defined(__x86_64__) && !defined(__aarch64__)
#error "sandbox/profiles: the clone rules read flags as arg0 (x86_64, aarch64): check them here"
#endif

#define SB_EMBED(sym, file)						\
	__asm__(".section .rodata\n"					\
		".balign 16\n"						\
		".type " #sym ", @object\n"				\
		#sym ":\n"						\
		".incbin \"" file "\"\n"				\
		".byte 0\n"						\
		".size " #sym ", . - " #sym "\n"			\
		".previous\n")

SB_EMBED(sb_profile_default, "sandbox/profiles/default.policy");
SB_EMBED(sb_profile_strict, "sandbox/profiles/strict.policy");
extern const char sb_profile_default[] __attribute__((visibility("hidden")));
extern const char sb_profile_strict[] __attribute__((visibility("hidden")));

const char *sb_profile_text(const char *name)
{
	if (!name)
		return NULL;
	if (!strcmp(name, "default"))
		return sb_profile_default;
	if (!strcmp(name, "strict"))
		return sb_profile_strict;
	return NULL;
}
