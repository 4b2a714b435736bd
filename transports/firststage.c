// SPDX-License-Identifier: MIT
/*
 * firststage.c — starting a context through a program (ssh, sudo, su,
 * doas): the image, the first-stage script, and the conversation with the
 * program until the agent is up. See transport.h for the sequence and
 * docs/firststage.md for the cache rules.
 *
 * The first stage (a POSIX sh script given on the command line):
 *  - says "MGSTART" first: from then on the target side runs, and no
 *    password prompt is the program's (tty_check, target_started);
 *  - refuses another CPU architecture ("MGARCH <uname -m>") before any
 *    image byte is sent (MITOGEN_TEST_ARCH in the master pretends ours is
 *    another, for tests);
 *  - looks for <sha256> in the candidate directories, in order:
 *      ${XDG_CACHE_HOME:-HOME/.cache}/mitogen  (HOME: the target's own,
 *          see first_stage_home; XDG_CACHE_HOME only inside it)
 *      $XDG_RUNTIME_DIR/mitogen, /dev/shm/mitogen-UID,
 *      /var/tmp/mitogen-UID, /tmp/mitogen-UID
 *    each used only when every component up to / is owned by root or
 *    the target and writable by no one else (sticky directories
 *    excepted), the directory itself ours, made 0700 (docs/firststage.md);
 *    an image runs only from the fd it was checked and hashed through
 *    (exec /proc/self/fd/3), never from a path opened again;
 *  - otherwise picks the first such candidate where a probe script can be
 *    executed (noexec mounts are skipped), says "MGSEND", reads exactly
 *    the gzip bytes from stdin, checks the hash, renames into place and
 *    execs; when no candidate is usable, a private mktemp -d directory
 *    that is removed before the exec ("MGPRIVATE <reasons>": logged);
 *    when that fails too, "MGNODIR <reasons>";
 *  - a cache hit touches the image (its mtime: last used; the agent does
 *    it on fd 3, agent_image_used in agent/agent.c); storing a new
 *    image prunes that directory (prune(): the newest MG_CACHE_KEEP_S of
 *    our images and any used in the last MG_CACHE_GRACE_S minutes stay).
 * The master writes nothing but the image, and that only when asked,
 * until the agent greets (MGREADY, or connecting back).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ctype.h>
#include <dirent.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <zlib.h>
#include <elf.h>
#include <link.h>

#include "agent/agent.h"
#include "agent/tree.h"
#include "core/broker.h"
#include "core/context.h"
#include "core/hooks.h"
#include "core/log.h"
#include "core/message.h"
#include "sandbox/sandbox.h"
#include "transports/transport.h"

/* The cache keeps this many images (the newest one used or stored
 * included) and any image used in the last MG_CACHE_GRACE_S minutes. */
#define MG_CACHE_KEEP_S "4"
#define MG_CACHE_GRACE_S "60"

#define TTY_KEEP 4096
#define LINE_KEEP 1024

/* --- the image --------------------------------------------------------- */

static pthread_mutex_t self_lock = PTHREAD_MUTEX_INITIALIZER;
static struct image *self_image;	/* /proc/self/exe, kept for the process */

static void image_free(struct image *img)
{
	if (!img)
		return;
	free(img->data);
	free(img->gz);
	free(img);
}

static struct image *image_load(const char *path, bool strip, char *why, size_t size)
{
	struct image *img = calloc(1, sizeof(*img));
	struct stat st;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (!img || fd < 0 || fstat(fd, &st) < 0) {
		snprintf(why, size, "cannot read image %s: %s", path, strerror(errno));
		goto fail;
	}
	img->len = (size_t)st.st_size;
	img->data = malloc(img->len ? img->len : 1);
	if (!img->data) {
		snprintf(why, size, "out of memory");
		goto fail;
	}
	while (got < img->len) {
		ssize_t n = read(fd, img->data + got, img->len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(why, size, "cannot read image %s: %s", path,
				 n < 0 ? strerror(errno) : "short read");
			goto fail;
		}
		got += (size_t)n;
	}
	close(fd);
	if (strip)
		img->len = image_strip_debug(img->data, img->len);
	sha256_hex(img->data, img->len, img->sha);
	return img;
fail:
	if (fd >= 0)
		close(fd);
	image_free(img);
	return NULL;
}

/* Is [off, off + len) clear of every byte the image keeps? */
static bool strip_clear(const ElfW(Shdr) *sh, const bool *drop, size_t nsh, size_t shoff,
			size_t off, size_t len)
{
	size_t tab = nsh * sizeof(*sh);

	if (off < shoff + tab && shoff < off + len)
		return false;
	for (size_t i = 0; i < nsh; i++)
		if (!drop[i] && sh[i].sh_type != SHT_NOBITS && sh[i].sh_size &&
		    off < sh[i].sh_offset + sh[i].sh_size && sh[i].sh_offset < off + len)
			return false;
	return true;
}

/* Bytes cut before file offset x. */
static size_t strip_shift(const size_t (*cut)[3], size_t ncut, size_t x)
{
	size_t n = 0;

	for (size_t i = 0; i < ncut; i++)
		if (cut[i][0] < x)
			n += cut[i][1];
	return n;
}

/*
 * Drop the debug information (.debug_*, .zdebug_*: 40 % of a -g build of
 * the tool) from an ELF image of our own class and byte order, in place;
 * returns the new length. The image that runs is the same: only
 * non-allocated sections that lie after every segment go (their headers
 * stay, empty, so no section index changes), the other sections, the
 * section header table and any bytes after them move down by multiples
 * of 64 (their alignment kept). Anything else (not ELF, another class, a
 * section where it cannot be cut, nothing to drop) is left as it is, so
 * a stripped image strips to itself: one name in the caches of every hop.
 */
size_t image_strip_debug(uint8_t *d, size_t len)
{
	static const uint8_t native[] = {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		ELFDATA2LSB,
#else
		ELFDATA2MSB,
#endif
	};
	ElfW(Ehdr) eh;
	ElfW(Shdr) *sh = NULL;
	bool *drop = NULL;
	size_t (*cut)[3] = NULL, ncut = 0, solid, nsh, shoff, strs, strsz, out, at;

	if (len < sizeof(eh))
		return len;
	memcpy(&eh, d, sizeof(eh));
	nsh = eh.e_shnum;
	shoff = eh.e_shoff;
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
	    eh.e_ident[EI_DATA] != native[0] || eh.e_shentsize != sizeof(*sh) ||
	    eh.e_phentsize != sizeof(ElfW(Phdr)) || !nsh || eh.e_shstrndx >= nsh ||
	    shoff > len || nsh > (len - shoff) / sizeof(*sh) || eh.e_phoff > len ||
	    eh.e_phnum > (len - eh.e_phoff) / sizeof(ElfW(Phdr)))
		return len;
	sh = malloc(nsh * sizeof(*sh));
	drop = calloc(nsh, sizeof(*drop));
	cut = calloc(nsh, sizeof(*cut));
	if (!sh || !drop || !cut)
		goto keep;
	memcpy(sh, d + shoff, nsh * sizeof(*sh));
	/* Nothing the kernel loads may move: cut only after all of it. */
	solid = eh.e_phoff + eh.e_phnum * sizeof(ElfW(Phdr));
	for (size_t i = 0; i < eh.e_phnum; i++) {
		ElfW(Phdr) ph;

		memcpy(&ph, d + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_offset > len || ph.p_filesz > len - ph.p_offset)
			goto keep;
		if (ph.p_offset + ph.p_filesz > solid)
			solid = ph.p_offset + ph.p_filesz;
	}
	strs = sh[eh.e_shstrndx].sh_offset;
	strsz = sh[eh.e_shstrndx].sh_size;
	if (strs > len || strsz > len - strs)
		goto keep;
	for (size_t i = 0; i < nsh; i++) {
		const char *name = (const char *)d + strs + sh[i].sh_name;

		if (sh[i].sh_type != SHT_NOBITS &&
		    (sh[i].sh_offset > len || sh[i].sh_size > len - sh[i].sh_offset))
			goto keep;
		if (sh[i].sh_name >= strsz || !memchr(name, '\0', strsz - sh[i].sh_name) ||
		    (sh[i].sh_flags & SHF_ALLOC) || sh[i].sh_type == SHT_NOBITS || !sh[i].sh_size ||
		    (strncmp(name, ".debug", 6) && strncmp(name, ".zdebug", 7)))
			continue;
		if (sh[i].sh_offset < solid)
			goto keep;
		drop[i] = true;
	}
	/* Runs of dropped sections, in file order, each cut by a multiple of 64. */
	for (;;) {
		size_t best = nsh, end;

		for (size_t i = 0; i < nsh; i++)
			if (drop[i] && (ncut == 0 || sh[i].sh_offset >= cut[ncut - 1][0] + cut[ncut - 1][2]) &&
			    (best == nsh || sh[i].sh_offset < sh[best].sh_offset))
				best = i;
		if (best == nsh)
			break;
		end = sh[best].sh_offset + sh[best].sh_size;
		if (!strip_clear(sh, drop, nsh, shoff, sh[best].sh_offset, sh[best].sh_size))
			goto keep;
		if (ncut && strip_clear(sh, drop, nsh, shoff, cut[ncut - 1][0],
					end - cut[ncut - 1][0])) {
			cut[ncut - 1][2] = end - cut[ncut - 1][0];
		} else {
			cut[ncut][0] = sh[best].sh_offset;
			cut[ncut++][2] = sh[best].sh_size;
		}
	}
	/* [0] where, [1] how much goes, [2] how much the run held. */
	for (size_t i = 0; i < ncut; i++)
		cut[i][1] = cut[i][2] & ~(size_t)63;
	if (!ncut || !strip_shift(cut, ncut, len))
		goto keep;
	/* What moves keeps its alignment (64 at most). */
	for (size_t i = 0; i < nsh; i++)
		if (!drop[i] && sh[i].sh_addralign > 64 && strip_shift(cut, ncut, sh[i].sh_offset))
			goto keep;
	for (size_t i = 0; i < nsh; i++) {
		if (drop[i]) {
			/* Empty, where its run was. */
			for (size_t k = 0; k < ncut; k++)
				if (cut[k][0] <= sh[i].sh_offset &&
				    sh[i].sh_offset - cut[k][0] < cut[k][2])
					sh[i].sh_offset = cut[k][0];
			sh[i].sh_offset -= strip_shift(cut, ncut, sh[i].sh_offset);
			sh[i].sh_size = 0;
		} else if (sh[i].sh_offset >= solid) {
			sh[i].sh_offset -= strip_shift(cut, ncut, sh[i].sh_offset);
		}
	}
	eh.e_shoff -= strip_shift(cut, ncut, shoff);
	out = at = 0;
	for (size_t i = 0; i <= ncut; i++) {
		size_t stop = i < ncut ? cut[i][0] : len;

		memmove(d + out, d + at, stop - at);
		out += stop - at;
		at = i < ncut ? cut[i][0] + cut[i][1] : len;
	}
	memcpy(d, &eh, sizeof(eh));
	memcpy(d + eh.e_shoff, sh, nsh * sizeof(*sh));
	len = out;
keep:
	free(sh);
	free(drop);
	free(cut);
	return len;
}

/* The image for opts->image (NULL: ourselves, loaded once). *owned: free it. */
static struct image *image_get(const char *path, bool *owned, char *why, size_t size)
{
	struct image *img;

	*owned = false;
	if (path) {
		*owned = true;
		return image_load(path, false, why, size);
	}
	pthread_mutex_lock(&self_lock);
	if (!self_image)
		self_image = image_load("/proc/self/exe", true, why, size);
	img = self_image;
	pthread_mutex_unlock(&self_lock);
	return img;
}

static int image_compress(struct image *img)
{
	z_stream z = { 0 };
	uLong bound;
	int ret = 0;

	pthread_mutex_lock(&self_lock);
	if (img->gz)
		goto out;
	/* windowBits 15 + 16: a gzip member, what `gzip -d` reads. */
	if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		ret = -ENOMEM;
		goto out;
	}
	bound = deflateBound(&z, (uLong)img->len) + 64;
	img->gz = malloc(bound);
	if (!img->gz) {
		deflateEnd(&z);
		ret = -ENOMEM;
		goto out;
	}
	z.next_in = img->data;
	z.avail_in = (uInt)img->len;
	z.next_out = img->gz;
	z.avail_out = (uInt)bound;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		free(img->gz);
		img->gz = NULL;
		ret = -EIO;
	} else {
		img->gzlen = z.total_out;
	}
	deflateEnd(&z);
out:
	pthread_mutex_unlock(&self_lock);
	return ret;
}

/* --- helpers ----------------------------------------------------------- */

void argv_add(struct argv_buf *ab, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ab->argc >= (int)(sizeof(ab->argv) / sizeof(ab->argv[0])) - 1 ||
	    ab->used >= sizeof(ab->store)) {
		ab->overflow = true;
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(ab->store + ab->used, sizeof(ab->store) - ab->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(ab->store) - ab->used) {
		ab->overflow = true;
		return;
	}
	ab->argv[ab->argc++] = ab->store + ab->used;
	ab->argv[ab->argc] = NULL;
	ab->used += (size_t)n + 1;
}

int passwd_uid(const char *user, uid_t *ret)
{
	FILE *f = fopen("/etc/passwd", "re");
	char line[1024];
	size_t n = strlen(user);
	int found = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *p;

		if (strncmp(line, user, n) || line[n] != ':')
			continue;
		p = strchr(line + n + 1, ':');
		if (p) {
			*ret = (uid_t)strtoul(p + 1, NULL, 10);
			found = 0;
		}
		break;
	}
	fclose(f);
	return found;
}

static void arch_of_image(char *buf, size_t size)
{
	const char *test = getenv("MITOGEN_TEST_ARCH");
	struct utsname u;

	if (test && *test) {
		snprintf(buf, size, "%s", test);
		return;
	}
	if (uname(&u) == 0)
		snprintf(buf, size, "%.60s", u.machine);
	else
		snprintf(buf, size, "unknown");
}

/*
 * The first stage. No single quote and no newline in it, so `sh -c '...'`
 * carries it through one more shell (ssh, su), whatever the login shell.
 * home: what the target's home is, as a shell word ("$HOME", "~USER") or
 * "" (none); run: arguments after the image path. The rules it keeps are
 * docs/firststage.md's; in short:
 *  - sp DIR: DIR's physical path, when every component of DIR as written
 *    and as resolved (ls -ldnq: symlinks not followed, one line each;
 *    busybox's ls, which has no -q, first where there is a busybox: a
 *    static program, it costs the target less than coreutils' ls; then
 *    ls -ldn, where every name is already known printable and a
 *    symlink's target with a newline can only add lines, each of which
 *    must pass too, and a line of fewer than 9 fields fails) is
 *    owned by root or us and, unless it is a symlink or a sticky
 *    directory, writable by neither group nor others; else the reason;
 *  - the image runs from the fd that was checked and hashed
 *    (/proc/self/fd/3), never from a path opened again;
 *  - nothing is created or changed before sp has passed the parent.
 * Why: this script is where a privileged target (root through sudo/su)
 * touches the filesystem on behalf of a less privileged caller, whose
 * environment it inherits (HOME, XDG_*) and who may race it. Paths
 * another user can change are refused outright, and the exec does not
 * depend on a path at all, so neither a planted environment nor a
 * swapped directory decides what runs as the target.
 */
static int firststage_script(char *buf, size_t size, const struct image *img,
			     const char *arch, const char *home, const char *run)
{
	int n = snprintf(buf, size,
		"H=%s;Y=%zu;A=%s;T=%s;D=$PWD;Q=${OLDPWD-};V=${OLDPWD+1};echo MGSTART;umask 077;set -f;"
		/* The kernel's architecture (Linux 6.1+ says it without our
		 * running uname; a personality may make uname -m differ) */
		"m=;read -r m </proc/sys/kernel/arch 2>/dev/null;[ \"$m\" = \"$A\" ]||m=$(uname -m);"
		"[ \"$m\" = \"$A\" ]||{ echo \"MGARCH $m\";exit 1;};"
		/* u: our effective uid, read without running anything */
		"u=;while read -r k a b c;do [ \"$k\" = Uid: ]&&{ u=$b;break;};done</proc/self/status;"
		"[ -n \"$u\" ]||u=$(id -u);W=;"
		/* B: a busybox is here: its static ls costs the target ~2 ms
		 * of CPU less than coreutils' dynamic one (docs/scale.md) */
		"B=;command -v busybox >/dev/null 2>&1&&B=1;"
		/* The home cache: ~/.cache, or XDG_CACHE_HOME only inside the
		 * target's own home (sudo -E and su carry the caller's over). */
		"case $T in /*);;*)T=;;esac;K=;[ -z \"$T\" ]||{ K=$T/.cache;"
		"case $XDG_CACHE_HOME/ in \"$T\"/?*)case /$XDG_CACHE_HOME/ in */../*);;"
		"*)K=$XDG_CACHE_HOME;;esac;;esac;K=$K/mitogen;};"
		"R=;case $XDG_RUNTIME_DIR in /?*)R=$XDG_RUNTIME_DIR/mitogen;;esac;"
		/* Lines we print carry names others chose: printf, never echo
		 * (dash's echo expands backslashes), and no candidate from the
		 * environment with a control character (a newline would start
		 * a line of the protocol). */
		"say(){ printf \"%%s\\n\" \"$*\"; };"
		"case $K$R in *[![:print:]]*)W=\"a cache path from the environment has control characters; \";"
		"case $K in *[![:print:]]*)K=;;esac;case $R in *[![:print:]]*)R=;;esac;;esac;"
		/* sp runs in this shell (a subshell is a fork: ~3 ms of the
		 * target's CPU per start, docs/scale.md): p is the result (the
		 * physical path, or the reason), sp restores IFS and goes back
		 * to the directory we started in (D: the agent runs there) and
		 * OLDPWD as it was (exported: the agent's commands see it). One ls, in a command substitution of
		 * one simple command (the shell execs it in the child it forks
		 * for it: no second fork), its lines split on a newline taken
		 * from the default IFS (the script has none of its own). */
		"sp(){ s0=$IFS;sq \"$@\";r=$?;IFS=$s0;[ -n \"$D\" ]&&cd \"$D\" 2>/dev/null||cd /;"
		"[ -n \"$V\" ]&&OLDPWD=$Q||unset OLDPWD;return $r; };"
		"sq(){ a=$1;F=${2-};cd -P \"$a\" 2>/dev/null||{ [ -d \"$a\" ]&&p=\"$a: cannot enter it\"||"
		"p=\"$a: no such directory\";return 1;};p=$PWD;"
		"case $p in *[![:print:]]*)p=\"$a: control characters in its path\";return 1;;esac;"
		"set --;for x in \"$a\" \"$p\";do while [ -n \"$x\" ];do set -- \"$@\" \"$x\";"
		"x=${x%%/*};done;done;[ -z \"$F\" ]||set -- \"$@\" \"$p/$F\";N=$(($#+1));"
		"l=;[ -z \"$B\" ]||l=$(LC_ALL=C TZ=UTC0 busybox ls -ldn / \"$@\" 2>/dev/null)||l=;"
		"[ -n \"$l\" ]||l=$(LC_ALL=C TZ=UTC0 TIME_STYLE=locale ls -ldnq / \"$@\" 2>/dev/null)||"
		"l=$(LC_ALL=C TZ=UTC0 ls -ldn / \"$@\" 2>/dev/null)||{ p=\"$a: cannot list it\";return 1;};"
		"IFS=${IFS#??};[ ${#IFS} = 1 ]||{ p=\"$a: cannot check it\";return 1;};i=0;j=0;"
		"for x in $l;do i=$((i+1));IFS=\" \";set -- $x;[ $# -ge 9 ]||{ p=\"$a: cannot check it\";return 1;};"
		"m=$1;o=$3;z=$5;shift 8;"
		"case $o in 0|$u);;*)p=\"$*: owned by another user (uid $o)\";return 1;;esac;"
		"case $m in l*|d????[!w]??[!w]*|d????????[tT]*|-????[!w]??[!w]*);;"
		"*)p=\"$*: writable by group or others ($m)\";return 1;;esac;"
		/* The image named F (a cache hit, run unhashed): it and its
		 * directory ours alone, it a regular file of the image's size. */
		"[ -z \"$F\" ]||case $*/$o$m in \"$p\"/\"$u\"d????[!w]??[!w]*)j=$((j+1));;"
		"\"$p/$F\"/\"$u\"-????[!w]??[!w]*)[ \"$z\" = \"$Y\" ]||"
		"{ p=\"$*: $z bytes, not $Y\";return 1;};j=$((j+2));;esac;done;"
		"[ $i -ge $N ]||{ p=\"$a: cannot list it\";return 1;};"
		"[ -z \"$F\" ]||[ $j -ge 3 ]||{ p=\"$p/$F: not ours alone\";return 1;}; };"
		/* Is $1 (a path to the image) what $H names? coreutils'
		 * sha256sum first: for an image of a few MB its start-up and
		 * hashing cost the target less CPU than openssl's start-up
		 * alone (loading libcrypto, its configuration: ~15 ms against
		 * ~10 ms for sha256sum's whole run, docs/scale.md), SHA
		 * instructions or not; anything but a match asks openssl. */
		"S(){ x=$(sha256sum<\"$1\" 2>/dev/null);[ \"${x%%%% *}\" = \"$H\" ]||"
		"{ x=$(openssl dgst -sha256 -r<\"$1\" 2>/dev/null);[ \"${x%%%% *}\" = \"$H\" ]; }; };"
		/* Open $1 as fd 3: ours, a regular file, executable here (not
		 * on a noexec mount: a failed exec would end the shell), the
		 * right bytes? */
		"o3(){ { command exec 3<\"$1\";} 2>/dev/null&&[ -f /proc/self/fd/3 ]&&"
		"[ -O /proc/self/fd/3 ]&&[ -x /proc/self/fd/3 ]; };fd(){ o3 \"$1\"&&S /proc/self/fd/3; };"
		/* A cache hit: not hashed (sp checked the file and its
		 * directory are ours alone: docs/firststage.md). */
		"look(){ [ -f \"$1/$H\" ]&&sp \"$1\" \"$H\"&&[ -O \"$p\" ]&&[ -f \"$p/$H\" ]||return;"
		"o3 \"$p/$H\"&&exec /proc/self/fd/3 %s;exec 3<&-; };"
		/* Keep the 4 most recently used images (ours: 64 hex digits, a
		 * regular file we own) and any used in the last hour. */
		"prune(){ (cd \"$1\"||exit;k=0;l=;for f in $(ls -t);do "
		"case $f in \"$H\"|*[!0-9a-f]*)continue;;esac;[ ${#f} = 64 ]&&[ -f \"$f\" ]&&"
		"[ ! -L \"$f\" ]&&[ -O \"$f\" ]||continue;"
		"k=$((k+1));[ $k -lt " MG_CACHE_KEEP_S " ]||l=\"$l $f\";done;"
		"[ -z \"$l\" ]||find $l -prune -type f -user $u -mmin +" MG_CACHE_GRACE_S " -exec rm -f {} +;"
		"find . -maxdepth 1 -type f -user $u \\( -name \".p[0-9]*\" -o -name \".[0-9a-f]*.[0-9]*\" \\) "
		"-mmin +" MG_CACHE_GRACE_S " -exec rm -f {} +"
		") >/dev/null 2>&1; };"
		/* Can a file in $1 be executed (noexec mounts)? */
		"pr(){ f=$1/.p$$;{ printf \"#!/bin/sh\\n\">\"$f\"&&chmod 700 \"$f\"&&\"$f\";} 2>/dev/null;"
		"r=$?;rm -f \"$f\";return $r; };"
		/* Receive the image into $1 and open it as fd 3 (checked). */
		"get(){ echo MGSEND;read Z;head -c $Z|gzip -dc>\"$1\"&&chmod 700 \"$1\"&&fd \"$1\"; };"
		/* Store into $1: its parent (for the home cache only, made
		 * inside the checked home when missing: ~/.cache) must pass sp,
		 * $1 be a directory of ours. */
		"store(){ e=$1;c=${e%%/*};[ -d \"$c\" ]||[ \"$e\" != \"$K\" ]||"
		"{ sp \"${c%%/*}\"&&mkdir \"$p/${c##*/}\" 2>/dev/null;};"
		"sp \"$c\"||{ W=\"$W$e: $p; \";return;};L=$p/${e##*/};"
		"[ -e \"$L\" ]||[ -L \"$L\" ]||mkdir \"$L\" 2>/dev/null;"
		"[ -d \"$L\" ]&&[ ! -L \"$L\" ]&&[ -O \"$L\" ]||{ set -- $(LC_ALL=C ls -ldnq \"$L\" 2>/dev/null);"
		"case $3 in \"\")W=\"$W$e: cannot make it; \";;$u)W=\"$W$e: not a directory; \";;"
		"*)W=\"$W$e: owned by another user (uid $3); \";;esac;return;};"
		"chmod 700 \"$L\";pr \"$L\"||{ W=\"$W$e: noexec; \";return;};t=$L/.$H.$$;"
		"get \"$t\"&&mv -f \"$t\" \"$L/$H\"&&{ prune \"$L\";exec /proc/self/fd/3 %s; };"
		"rm -f \"$t\";echo MGERR image transfer failed;exit 1; };"
		/* No candidate: a private directory, gone before the exec. */
		"priv(){ for b in /dev/shm /tmp /var/tmp;do sp \"$b\"||{ W=\"$W$p; \";continue;};"
		"q=$(mktemp -d \"$p/mitogen-$u.XXXXXXXXXX\" 2>/dev/null)||{ W=\"$W$b: mktemp failed; \";continue;};"
		"if pr \"$q\";then say \"MGPRIVATE $W\";get \"$q/$H\";r=$?;rm -rf \"$q\";"
		"[ $r = 0 ]&&exec /proc/self/fd/3 %s;echo MGERR image transfer failed;exit 1;fi;"
		"rm -rf \"$q\";W=\"$W$b (private directory): noexec; \";done; };"
		"each(){ for d in \"$K\" \"$R\" /dev/shm/mitogen-$u /var/tmp/mitogen-$u /tmp/mitogen-$u;"
		"do [ -n \"$d\" ]&&$1 \"$d\";done; };"
		"each look;each store;priv;say \"MGNODIR $W\";exit 1",
		img->sha, img->len, arch, home, run, run, run);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Room for firststage_command: the script twice and the words around it. */
#define MG_COMMAND_MAX (2 * 8192 + 256)

/*
 * The command line a login shell runs (ssh, su: `SHELL -c COMMAND`). A
 * shell known to run the script as POSIX sh runs it itself and never
 * returns (every path of the script ends in exec or exit); any other
 * shell hands it to `sh`, as every start did before: one exec of a shell
 * (~3-4 ms of the target's CPU, docs/scale.md) less for the common login
 * shells. The words outside the single quotes parse alike in POSIX
 * shells, zsh and fish (3.0 and later: `||`), and tell them apart by
 * `$status`, which zsh and fish set and POSIX shells do not (one in the
 * environment only sends a POSIX shell the way of `sh`). A POSIX shell
 * then runs the script only when its name ($0: sshd and su give the
 * login shell's base name) is one the script is tested under
 * (test_ssh_login_shells in selftests/transports/test_ssh.c) and that
 * reads no start-up file when not interactive: not bash, which reads
 * ~/.bashrc under sshd, whose functions and options would apply to the
 * script's checks. zsh's native mode splits words otherwise and takes
 * `sh` with the others.
 * (csh and tcsh expand the script's `!` inside single quotes, as they
 * did before: neither way runs there.) The script holds no single quote
 * and no newline, so it is carried as it is.
 */
static void firststage_command(char *buf, size_t size, const char *script)
{
	snprintf(buf, size,
		 "test -n \"$status\"||eval 'case ${0##*/} in "
		 "sh|-sh|dash|-dash|mksh|-mksh|ash|-ash)%s;;esac';"
		 "exec sh -c '%s'", script, script);
}

/* --- the conversation -------------------------------------------------- */

struct conv {
	const struct transport_req *req;
	const char *name;
	struct image *img;
	const char *arch;
	pid_t pid;
	int chan;			/* program's stdin/stdout */
	int tty;			/* pty master */
	int slave;			/* pty slave, kept open while we talk */
	int errfd;			/* the program's stderr (read end) */
	bool last_from_tty;		/* the newest output came from the pty */
	int lfd;			/* connect_back: listening socket */
	double deadline;
	double stall;			/* after MGSTART: the bound on no progress */
	char ttybuf[TTY_KEEP];		/* what the program printed (tail) */
	size_t ttylen, scan;		/* scan: prompts looked for from here */
	char line[LINE_KEEP];		/* stdout line being read */
	size_t linelen;
	char outtail[LINE_KEEP];	/* last non-protocol stdout line */
	bool typed;			/* the password was typed */
	bool started;			/* MGSTART seen: the target side runs */
	bool eof;			/* the channel is closed */
	char comm[32];			/* the program's comm when started */
	bool ready;			/* MGREADY seen */
	size_t sent;			/* image bytes written */
	char pre[24];			/* "<gzip size>\n", sent before them */
	size_t prelen, present;
	bool sending;
	int conn;			/* connect_back: accepted fd */
	/* connect_back: connections refused, said once (refused_report) */
	unsigned refused;
	unsigned refused_nuids;
	uid_t refused_uids[8];		/* the first distinct ones */
	pid_t refused_pid;		/* the first one's */
};

static void tty_append(struct conv *c, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];

		if (ch == '\r' || ch == '\0')
			continue;
		if (c->ttylen == TTY_KEEP - 1) {
			size_t drop = TTY_KEEP / 2;

			memmove(c->ttybuf, c->ttybuf + drop, c->ttylen - drop);
			c->ttylen -= drop;
			c->scan = c->scan > drop ? c->scan - drop : 0;
		}
		c->ttybuf[c->ttylen++] = ch;
	}
	c->ttybuf[c->ttylen] = '\0';
}

/* Last lines of what the program printed, for messages. */
static void what_it_said(struct conv *c, char *buf, size_t size)
{
	const char *p = c->ttybuf;
	size_t n = c->ttylen;

	while (n && isspace((unsigned char)p[n - 1]))
		n--;
	while (n && isspace((unsigned char)*p)) {
		p++;
		n--;
	}
	if (n > 600) {
		p += n - 600;
		n = 600;
	}
	if (!n && c->outtail[0]) {
		snprintf(buf, size, "%.500s", c->outtail);
		return;
	}
	snprintf(buf, size, "%.*s", (int)n, p);
	for (char *q = buf; *q; q++)
		if (*q == '\n')
			*q = ' ';
}

static void lower_copy(char *dst, const char *src, size_t size)
{
	size_t i;

	for (i = 0; src[i] && i < size - 1; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = '\0';
}

static int fail(struct conv *c, struct mg_error *err, enum mg_error_kind kind, int e,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(struct conv *c, struct mg_error *err, enum mg_error_kind kind, int e,
		const char *fmt, ...)
{
	char what[512], said[700];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	what_it_said(c, said, sizeof(said));
	if (*said)
		error_set(err, kind, e, "%s: %s; %s said: %s", c->name, what, c->req->t->kind,
			  said);
	else
		error_set(err, kind, e, "%s: %s", c->name, what);
	return -e;
}

static int read_chan(struct conv *c, struct mg_error *err);

/* comm, state and parent of pid from /proc/PID/stat. 0 or -1. */
static int proc_stat(pid_t pid, char *comm, size_t size, char *state, pid_t *ppid)
{
	char path[64], buf[512], *open_, *close_;
	int fd, p = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	open_ = strchr(buf, '(');
	close_ = strrchr(buf, ')');
	if (!open_ || !close_ || close_ < open_ || sscanf(close_ + 1, " %c %d", state, &p) != 2)
		return -1;
	snprintf(comm, size, "%.*s", (int)(close_ - open_ - 1), open_ + 1);
	*ppid = p;
	return 0;
}

/* Has pid a child process? */
static bool has_child(pid_t pid)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	bool found = false;

	while (d && !found && (e = readdir(d))) {
		char comm[32], state;
		pid_t ppid;

		if (isdigit((unsigned char)e->d_name[0]) &&
		    proc_stat((pid_t)atoi(e->d_name), comm, sizeof(comm), &state, &ppid) == 0)
			found = ppid == pid;
	}
	if (d)
		closedir(d);
	return found;
}

/*
 * Has the target side started, so that a prompt now is not the program's?
 * The first stage said MGSTART (read what is in the channel first: what
 * the target side wrote before the prompt is there by now); or, for
 * programs that ask before they start anything (sudo, su, doas), the
 * program has a child or has exec'd (comm changed) or exited. A program
 * we cannot see in /proc (hidepid) is judged by MGSTART alone.
 * 1: started, 0: not, <0: failed (err set).
 */
static int target_started(struct conv *c, struct mg_error *err)
{
	char comm[sizeof(c->comm)], state;
	pid_t ppid;

	if (!c->eof && read_chan(c, err) < 0)
		return -1;
	if (c->started || c->ready)
		return 1;
	if (!c->req->t->solo_prompt || !c->comm[0] ||
	    proc_stat(c->pid, comm, sizeof(comm), &state, &ppid) < 0)
		return 0;
	return state == 'Z' || strcmp(comm, c->comm) || has_child(c->pid);
}

/* Does the new text end in a password prompt from where the program asks? */
static bool prompt_seen(struct conv *c, const char *low)
{
	const struct transport *t = c->req->t;

	/* su's (PAM's) prompt comes on stderr; the others' on the pty. */
	if (t->prompt_on_stderr == c->last_from_tty)
		return false;
	return pty_is_prompt(low, t->prompts);
}

/* Look at new pty output: prompts, refusals. <0: failed (err set). */
static int tty_check(struct conv *c, struct mg_error *err)
{
	const struct transport *t = c->req->t;
	char low[TTY_KEEP];

	lower_copy(low, c->ttybuf + c->scan, sizeof(low));
	if (pty_contains_any(low, t->hostkey_fail))
		return fail(c, err, MG_ERR_HOSTKEY, EACCES, "host key verification failed");
	if (pty_contains_any(low, t->pw_fail))
		return fail(c, err, MG_ERR_PASSWORD, EACCES,
			    c->typed ? "password rejected"
				     : c->req->password ? "authentication failed"
							: "authentication failed and no password was given");
	if (prompt_seen(c, low)) {
		char pw[1100];
		int fd = t->pw_on_stdin ? c->chan : c->tty;
		int started = target_started(c, err);
		size_t n;

		if (started < 0)
			return -1;
		if (started) {
			/* Not the program's: its target side's (a login
			 * shell, a banner). Nothing is typed, nothing fails. */
			LOG_WARN("%s: ignored a password prompt written after %s started the "
				 "target side", c->name, t->kind);
			c->scan = c->ttylen;
			return 0;
		}
		if (!c->req->password)
			return fail(c, err, MG_ERR_PASSWORD, EACCES,
				    "%s asked for a password and none was given", t->kind);
		if (c->typed)
			return fail(c, err, MG_ERR_PASSWORD, EACCES, "password rejected");
		n = (size_t)snprintf(pw, sizeof(pw), "%s\n", c->req->password);
		if (n >= sizeof(pw) || write(fd, pw, n) != (ssize_t)n) {
			explicit_bzero(pw, sizeof(pw));
			return fail(c, err, MG_ERR_STREAM, EIO, "cannot type the password");
		}
		explicit_bzero(pw, sizeof(pw));
		c->typed = true;
		c->scan = c->ttylen;
		return 0;
	}
	if (pty_contains_any(low, t->fatal))
		return fail(c, err, MG_ERR_STREAM, ECONNREFUSED, "%s failed", t->kind);
	return 0;
}

/* Read the pty (fd == c->tty) or stderr; both feed the same text. */
static int read_out(struct conv *c, int fd, struct mg_error *err)
{
	char buf[1024];
	ssize_t n;

	while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0) {
		tty_append(c, buf, (size_t)n);
		c->last_from_tty = fd == c->tty;
		if (tty_check(c, err) < 0)
			return -1;
	}
	return 0;
}

static int read_tty(struct conv *c, struct mg_error *err)
{
	if (read_out(c, c->tty, err) < 0)
		return -1;
	return read_out(c, c->errfd, err);
}

/*
 * The first stage's reasons ("DIR: why; DIR: why; "), for a log line or an
 * error: control bytes (from names someone else chose) shown as '?', the
 * last separator dropped.
 */
static void reasons_copy(char *dst, const char *src, size_t size)
{
	size_t n = 0;

	for (; *src && n < size - 1; src++)
		dst[n++] = (unsigned char)*src < 0x20 || *src == 0x7f ? '?' : *src;
	while (n && (dst[n - 1] == ' ' || dst[n - 1] == ';'))
		n--;
	dst[n] = '\0';
}

/* One stdout line of the first stage. */
static int chan_line(struct conv *c, const char *line, struct mg_error *err)
{
	if (!strcmp(line, "MGSTART")) {
		/* The first stage runs: the program asks nothing any more. */
		c->started = true;
		/* Authenticated: from now on a bound on no progress, not on
		 * the whole start (the image may take a while to arrive). */
		c->deadline = mono_now() + c->stall;
		if (c->req->authenticated)
			c->req->authenticated(c->req->authenticated_arg);
		return 0;
	}
	if (!strcmp(line, "MGREADY")) {
		c->ready = true;
		return 0;
	}
	if (!strcmp(line, "MGSEND")) {
		if (image_compress(c->img) < 0)
			return fail(c, err, MG_ERR_STREAM, ENOMEM, "cannot compress the image");
		LOG_DEBUG("%s: sending the image (%zu bytes, %zu compressed)", c->name,
			  c->img->len, c->img->gzlen);
		c->prelen = (size_t)snprintf(c->pre, sizeof(c->pre), "%zu\n", c->img->gzlen);
		c->sending = true;
		c->deadline = mono_now() + c->stall;
		return 0;
	}
	if (!strncmp(line, "MGARCH ", 7))
		return fail(c, err, MG_ERR_STREAM, ENOEXEC,
			    "architecture mismatch: the target runs %.64s, this image is for %.64s",
			    line + 7, c->arch);
	if (!strncmp(line, "MGPRIVATE ", 10)) {
		char why[LINE_KEEP];

		/* Say why, once per start: a cache we cannot use is someone
		 * else's directory (or noexec), worth an operator's look. */
		reasons_copy(why, line + 10, sizeof(why));
		LOG_WARN("%s: no cache directory can be used (%s): the image runs from a private "
			 "directory, not cached", c->name, why);
		return 0;
	}
	if (!strncmp(line, "MGNODIR ", 8)) {
		char why[LINE_KEEP];

		reasons_copy(why, line + 8, sizeof(why));
		return fail(c, err, MG_ERR_STREAM, EACCES,
			    "no directory can hold the image: %.440s", why);
	}
	if (!strncmp(line, "MGERR ", 6))
		return fail(c, err, MG_ERR_STREAM, EIO, "first stage: %.400s", line + 6);
	/* Something else (a login script talking): keep it for messages. */
	snprintf(c->outtail, sizeof(c->outtail), "%s", line);
	return 0;
}

static int read_chan(struct conv *c, struct mg_error *err)
{
	char buf[1024];
	ssize_t n = -1;

	while (!c->ready && (n = read(c->chan, buf, sizeof(buf))) != 0) {
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : (c->eof = true, 0);
		for (ssize_t i = 0; i < n; i++) {
			if (c->ready)
				/* The agent writes nothing before BOOT. */
				return fail(c, err, MG_ERR_STREAM, EPROTO,
					    "unexpected bytes after the greeting");
			if (buf[i] != '\n') {
				if (c->linelen < LINE_KEEP - 1)
					c->line[c->linelen++] = buf[i];
				continue;
			}
			c->line[c->linelen] = '\0';
			c->linelen = 0;
			if (chan_line(c, c->line, err) < 0)
				return -1;
		}
	}
	if (!c->ready && n == 0)
		c->eof = true;
	return 0;
}

/* Send what is left of buf[len] (*done sent so far) until the channel is
 * full. Returns 1 when all of it went, 0 when full, <0 on failure. */
static int send_part(struct conv *c, const void *buf, size_t len, size_t *done,
		     struct mg_error *err)
{
	while (*done < len) {
		ssize_t n = send(c->chan, (const char *)buf + *done, len - *done,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n < 0)
			return fail(c, err, MG_ERR_STREAM, errno, "sending the image: %s",
				    strerror(errno));
		*done += (size_t)n;
		if (c->started)	/* progress: the bound starts again */
			c->deadline = mono_now() + c->stall;
	}
	return 1;
}

/* The size line, then the compressed image. */
static int send_image(struct conv *c, struct mg_error *err)
{
	int ret = send_part(c, c->pre, c->prelen, &c->present, err);

	if (ret > 0)
		ret = send_part(c, c->img->gz, c->img->gzlen, &c->sent, err);
	if (ret > 0)
		c->sending = false;
	return ret < 0 ? ret : 0;
}

/* Is pid a descendant of (or) ancestor? */
static bool descends_from(pid_t pid, pid_t ancestor)
{
	for (int depth = 0; depth < 8 && pid > 1; depth++) {
		char path[64], buf[512], *p;
		FILE *f;
		int ppid = 0;

		if (pid == ancestor)
			return true;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		f = fopen(path, "re");
		if (!f)
			return false;
		p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
		fclose(f);
		if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
			return false;
		pid = ppid;
	}
	return false;
}

/*
 * Someone else connected to the private socket: refused (closed unread),
 * counted, not logged one by one; any local user can connect to an
 * abstract socket and reconnect as fast as we refuse.
 */
static void refused_note(struct conv *c, const struct ucred *cr)
{
	unsigned i;

	if (!c->refused++)
		c->refused_pid = cr->pid;
	for (i = 0; i < c->refused_nuids && c->refused_uids[i] != cr->uid; i++)
		;
	if (i == c->refused_nuids && i < sizeof(c->refused_uids) / sizeof(c->refused_uids[0]))
		c->refused_uids[c->refused_nuids++] = cr->uid;
}

/* One WARNING for every connection refused during this start. */
static void refused_report(const struct conv *c)
{
	char uids[128] = "";
	size_t n = 0;

	if (!c->refused)
		return;
	for (unsigned i = 0; i < c->refused_nuids && n < sizeof(uids); i++)
		n += (size_t)snprintf(uids + n, sizeof(uids) - n, "%s%u", i ? ", " : "",
				      (unsigned)c->refused_uids[i]);
	LOG_WARN("%s: refused %u connection%s to the private socket from uid%s %s%s "
		 "(first from pid %d; expected a process under pid %d%s)", c->name, c->refused,
		 c->refused == 1 ? "" : "s", c->refused_nuids > 1 ? "s" : "", uids,
		 c->refused_nuids == sizeof(c->refused_uids) / sizeof(c->refused_uids[0])
			 ? " and maybe more" : "",
		 (int)c->refused_pid, (int)c->pid, c->req->check_uid ? " with the target uid" : "");
}

static int accept_child(struct conv *c, struct mg_error *err)
{
	struct ucred cr = { 0 };
	socklen_t len = sizeof(cr);
	int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 ||
	    (c->req->check_uid && cr.uid != c->req->want_uid) ||
	    !descends_from(cr.pid, c->pid)) {
		refused_note(c, &cr);
		close(fd);
		return 0;
	}
	c->conn = fd;
	return 0;
}

/* Has pid exited? (Not reaped: WNOWAIT; the caller reaps it.) */
static bool exited(pid_t pid)
{
	siginfo_t si = { 0 };

	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

static int converse(struct conv *c, struct mg_error *err)
{
	for (;;) {
		struct pollfd p[4] = {
			{ .fd = c->tty, .events = POLLIN },
			{ .fd = c->chan, .events = POLLIN | (c->sending ? POLLOUT : 0) },
			{ .fd = c->lfd, .events = POLLIN },
			{ .fd = c->errfd, .events = POLLIN },
		};
		double left = c->deadline - mono_now();
		int n;

		if (c->ready || c->conn >= 0)
			return 0;
		if (c->eof) {
			/* Gone: collect its last words, then say why. */
			for (int i = 0; i < 20 && !exited(c->pid); i++)
				usleep(10000);
			if (read_tty(c, err) < 0)
				return -1;
			if (c->conn < 0 && c->lfd >= 0)
				accept_child(c, err);
			if (c->conn >= 0)
				return 0;
			/* ssh's own ConnectTimeout (ours, rounded up) can fire
			 * just before our deadline on a busy machine: it is the
			 * same connect timeout, and is named so. */
			if (memmem(c->ttybuf, c->ttylen, "Connection timed out", 20))
				return fail(c, err, MG_ERR_STREAM, ETIMEDOUT,
					    "connect timeout: %s gave up waiting for the host",
					    c->req->t->kind);
			return fail(c, err, MG_ERR_STREAM, ECONNRESET, "%s exited before the agent started",
				    c->req->t->kind);
		}
		if (left <= 0 && c->started)
			return fail(c, err, MG_ERR_STREAM, ETIMEDOUT,
				    "connect timeout: the agent did not start; no progress for "
				    "%g s after the login", c->stall);
		if (left <= 0)
			return fail(c, err, MG_ERR_STREAM, ETIMEDOUT,
				    "connect timeout: the agent did not start in time");
		n = poll(p, 4, (int)(left * 1000) + 1);
		if (n < 0 && errno != EINTR)
			return fail(c, err, MG_ERR_STREAM, errno, "poll: %s", strerror(errno));
		if (n <= 0)
			continue;
		if (p[0].revents && read_out(c, c->tty, err) < 0)
			return -1;
		if (p[3].revents & POLLHUP && !(p[3].revents & POLLIN)) {
			close(c->errfd);	/* closed by all: nothing more */
			c->errfd = -1;
		} else if (p[3].revents && read_out(c, c->errfd, err) < 0) {
			return -1;
		}
		if (p[2].revents & POLLIN)
			accept_child(c, err);
		if ((p[1].revents & POLLOUT) && send_image(c, err) < 0)
			return -1;
		if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) && !c->eof && read_chan(c, err) < 0)
			return -1;
	}
}

/* --- starting ---------------------------------------------------------- */

/*
 * The target's home, as a shell word for the first stage (firststage_script
 * takes ~/.cache and XDG_CACHE_HOME only inside it). ssh: $HOME, which sshd
 * set from the target's own passwd entry. sudo, su, doas: ~USER, looked up
 * by the target's shell; never $HOME, which sudo -E keeps from the caller
 * (and sudo -H -E or su pair with the caller's XDG_CACHE_HOME). Nothing
 * (no home cache) for a user that is not a plain name (sudo -u '#0').
 */
static void first_stage_home(const struct transport_req *req, char *buf, size_t size)
{
	static const char plain[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789._-";
	const char *u = req->target_user;

	buf[0] = '\0';
	if (req->t->remote)
		snprintf(buf, size, "$HOME");
	else if (u && *u && *u != '-' && strlen(u) < size - 1 && !u[strspn(u, plain)])
		snprintf(buf, size, "~%s", u);
}

static int listen_private(char *name, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint8_t rnd[16];
	char hex[33];
	int fd;

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -EIO;
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	snprintf(name, size, "@mitogen-%s", hex);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	memcpy(sa.sun_path + 1, name + 1, strlen(name) - 1);
	if (bind(fd, (struct sockaddr *)&sa,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name))) < 0 ||
	    listen(fd, 8) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

static void reap_now(pid_t pid)
{
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

struct mg_context *transport_start(struct mg_router *r, const struct transport_req *req,
				   const struct mg_local_opts *lo, uint32_t id,
				   const struct mg_value *sandbox, struct mg_error *err)
{
	const struct transport *t = req->t;
	struct start st;
	struct conv c = { .req = req, .tty = -1, .slave = -1, .errfd = -1, .chan = -1, .lfd = -1,
			  .conn = -1 };
	struct argv_buf *ab = NULL;
	char slave[64], sock[64] = "", run[96], arch[64], why[512], home[72];
	char *script = NULL, *command = NULL;
	int sv[2] = { -1, -1 }, ep[2] = { -1, -1 }, ret;
	bool owned = false;
	unsigned ns = 0;
	double t0 = mono_now();
	pid_t pid;

	memset(&st, 0, sizeof(st));
	st.no_channel = true;
	st.default_name = req->default_name;
	st.remote = t->remote;
	st.privileged = t->privileged;
	ret = start_prepare(&st, r, lo, id, sandbox, err);
	if (ret < 0) {
		errno = -ret;
		return NULL;
	}
	c.name = st.namebuf;
	c.deadline = t0 + st.connect_timeout;
	c.stall = st.connect_timeout;
	/* Namespaces: the agent enters them itself (sandbox/namespaces.c). */
	if (st.sandbox && sandbox_ns_wanted(st.sandbox) &&
	    sandbox_ns_exec_bits(st.sandbox, t->kind, &ns, why, sizeof(why)) < 0) {
		error_set(err, MG_ERR_STREAM, EINVAL, "%s: sandbox: %s", st.namebuf, why);
		goto fail_early;
	}
	c.img = image_get(st.image, &owned, why, sizeof(why));
	if (!c.img) {
		error_set(err, MG_ERR_STREAM, EIO, "%s: %s", st.namebuf, why);
		goto fail_early;
	}
	arch_of_image(arch, sizeof(arch));
	c.arch = arch;
	if (t->connect_back) {
		c.lfd = listen_private(sock, sizeof(sock));
		if (c.lfd < 0) {
			error_set(err, MG_ERR_STREAM, -c.lfd, "%s: private socket: %s", st.namebuf,
				  strerror(-c.lfd));
			goto fail_early;
		}
		snprintf(run, sizeof(run), "--mitogen-connect %s", sock);
	} else {
		snprintf(run, sizeof(run), "--mitogen-stdio");
	}
	if (ns)
		snprintf(run + strlen(run), sizeof(run) - strlen(run), " --mitogen-ns %u", ns);
	script = malloc(8192);
	command = malloc(MG_COMMAND_MAX);
	ab = calloc(1, sizeof(*ab));
	if (!script || !command || !ab ||
	    (first_stage_home(req, home, sizeof(home)),
	     firststage_script(script, 8192, c.img, arch, home, run)) < 0) {
		error_set(err, MG_ERR_STREAM, ENOMEM, "%s: out of memory", st.namebuf);
		goto fail_early;
	}
	firststage_command(command, MG_COMMAND_MAX, script);
	if (req->build(req, command, script, ab, why, sizeof(why)) < 0 || ab->overflow) {
		error_set(err, MG_ERR_STREAM, EINVAL, "%s: %s", st.namebuf,
			  ab->overflow ? "command line too long" : why);
		goto fail_early;
	}
	/* podman: a socket handed over as fd 3, for the agent's channel
	 * (container_chan_take). */
	if (req->pass_chan && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, st.sv) < 0) {
		error_set(err, MG_ERR_STREAM, errno, "%s: cannot make the channel: %s",
			  st.namebuf, strerror(errno));
		goto fail_early;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    pipe2(ep, O_CLOEXEC) < 0 ||
	    (ret = pty_open(&c.tty, &c.slave, slave, sizeof(slave))) < 0) {
		error_set(err, MG_ERR_STREAM, errno, "%s: cannot make the channel: %s",
			  st.namebuf, strerror(errno));
		goto fail_early;
	}
	/* ssh has a session of its own at once: watched before an orphan
	 * reaper (mg.run on the main thread) could take it for one. */
	tree_spawn_begin();
	ret = pty_spawn(ab->argv[0], ab->argv, sv[1], slave, ep[1], st.sv[1], t->c_locale, &pid);
	tree_spawn_end(ret ? 0 : pid);
	if (st.sv[1] >= 0)
		close(st.sv[1]);
	st.sv[1] = -1;
	close(sv[1]);
	close(ep[1]);
	sv[1] = ep[1] = -1;
	c.errfd = ep[0];
	ep[0] = -1;
	fcntl(c.errfd, F_SETFL, fcntl(c.errfd, F_GETFL) | O_NONBLOCK);
	if (ret) {
		error_set(err, MG_ERR_STREAM, ret, "%s: cannot start %s: %s", st.namebuf,
			  ab->argv[0], strerror(ret));
		goto fail_early;
	}
	c.pid = pid;
	{
		/*
		 * The program's own comm, as the kernel names it from the path
		 * it execs: its last component, cut to 15 bytes. Not read from
		 * /proc: a loaded machine may let the program exec something
		 * else before we would look.
		 */
		const char *base = strrchr(ab->argv[0], '/');

		snprintf(c.comm, sizeof(c.comm), "%.15s", base ? base + 1 : ab->argv[0]);
	}
	c.chan = sv[0];
	fcntl(c.chan, F_SETFL, fcntl(c.chan, F_GETFL) | O_NONBLOCK);
	ret = converse(&c, err);
	refused_report(&c);
	if (ret < 0) {
		reap_now(pid);
		tree_child_reaped(pid);
		goto fail_early;
	}
	LOG_DEBUG("%s: first stage done in %.1f ms (%zu image bytes sent)", st.namebuf,
		  (mono_now() - t0) * 1e3, c.sent);
	if (c.conn >= 0) {
		/* Back on SEQPACKET: the stdio channel is closed. The kernel
		 * checks our end (the child made its own: nothing to lock
		 * there) before BOOT, before the child can send anything. */
		close(c.chan);
		st.sv[0] = c.conn;
		hooks_child_channel(r, st.id, c.conn, -1);
	} else if (st.sv[0] >= 0 && (st.sv[0] = container_chan_take(r, st.id, st.namebuf,
								     st.sv[0])) >= 0) {
		close(c.chan);	/* the agent's channel is the fd it was handed */
	} else {
		st.sv[0] = c.chan;
		st.bytes = true;
	}
	c.chan = -1;
	/* From now on, the program's stderr is logged; no more prompts. */
	if (c.errfd < 0)
		c.errfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	st.out[0] = c.errfd;
	c.errfd = -1;
	st.keep_fd = c.tty;
	close(c.slave);
	c.tty = c.slave = -1;
	if (c.lfd >= 0)
		close(c.lfd);
	st.connect_timeout = c.deadline - mono_now();
	if (st.connect_timeout < 0.5)
		st.connect_timeout = 0.5;
	free(script);
	free(command);
	free(ab);
	if (owned)
		image_free(c.img);
	return start_finish(&st, pid, err);

fail_early:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (c.tty >= 0)
		close(c.tty);
	if (c.slave >= 0)
		close(c.slave);
	if (c.errfd >= 0)
		close(c.errfd);
	for (int i = 0; i < 2; i++)
		if (ep[i] >= 0)
			close(ep[i]);
	if (c.lfd >= 0)
		close(c.lfd);
	if (c.conn >= 0)
		close(c.conn);
	free(script);
	free(command);
	free(ab);
	if (owned)
		image_free(c.img);
	start_cleanup(&st);
	errno = err && err->errnum ? err->errnum : EIO;
	return NULL;
}
