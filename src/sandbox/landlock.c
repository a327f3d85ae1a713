/*
 * landlock.c: the file-system and scope confinement of a parallel VMM
 * (sandbox.h, struct sandbox_landlock): which files its program may read and
 * execute from its execve on (the program, the dynamic loader and the
 * libraries the loader maps; in sanitized builds also /proc), built into a
 * Landlock ruleset in the child before it drops its uid, and enforced with
 * landlock_restrict_self before the exec. Every other path, every write,
 * every signal to a process outside the VMM's own Landlock domain, every
 * abstract unix socket outside it, and (Landlock's ptrace rule) every
 * ptrace-mode access (/proc/PID/mem, maps, environ, process_vm_readv,
 * ptrace) to a process outside it, is refused by the kernel.
 *
 * The loader's files are found by asking the program's own loader (its
 * PT_INTERP) to list them (ld.so --list PROGRAM, with an empty environment:
 * the VMM's has no LD_* variable either). The listing maps the objects and
 * runs none of their code.
 */
#include "sandbox/sandbox.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Access rights and fields newer than the build host's <linux/landlock.h>. */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#define LL_NET_BIND_TCP		      (1ULL << 0)
#define LL_NET_CONNECT_TCP	      (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LL_SCOPE_SIGNAL		      (1ULL << 1)

/* struct landlock_ruleset_attr as of ABI 6; its size tells the kernel which
 * fields the caller knows (8 bytes up to ABI 3, 16 for ABI 4 and 5). */
struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

/* What the loader lists: at most this much output. */
#define LIST_MAX 65536

int sandbox_landlock_abi(void)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	return v < 0 ? 0 : (int)v;
}

/* Every file-system right the kernel of ABI knows: all of them handled,
 * so that whatever a rule does not grant is refused. */
static uint64_t handled_fs(int abi)
{
	uint64_t a = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* ABI 1: bits 0-12 */
	if (abi >= 2)
		a |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		a |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		a |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return a;
}

int sandbox_landlock_add(struct sandbox_landlock *ll, const char *path, struct errbuf *e)
{
	if (path == NULL || path[0] != '/')
		return err_set(e, "Landlock rule: '%s' is not an absolute path", path ? path : "");
	for (unsigned i = 0; i < ll->nfiles; i++)
		if (strcmp(ll->names + ll->at[i], path) == 0)
			return 0;
	struct stat st;
	if (stat(path, &st) != 0)
		return err_set(e, "Landlock rule for %s: %s", path, strerror(errno));
	size_t len = strlen(path) + 1;
	if (ll->nfiles == SANDBOX_LL_FILES_MAX || ll->used + len > sizeof(ll->names))
		return err_set(e, "Landlock rule for %s: more than %u files or %zu bytes of names",
			       path, SANDBOX_LL_FILES_MAX, sizeof(ll->names));
	memcpy(ll->names + ll->used, path, len);
	ll->at[ll->nfiles] = (uint16_t)ll->used;
	ll->dir[ll->nfiles] = S_ISDIR(st.st_mode);
	ll->nfiles++;
	ll->used += len;
	return 0;
}

/* The PT_INTERP of ELF program FD into INTERP (empty: none, a static
 * program). 1: an ELF64 program; 0: not ELF (a script); -1 with e. */
static int elf_interp(const char *path, int fd, char *interp, size_t cap, struct errbuf *e)
{
	interp[0] = '\0';
	Elf64_Ehdr eh;
	ssize_t n = pread(fd, &eh, sizeof(eh), 0);
	if (n < 0)
		return err_set(e, "%s: %s", path, strerror(errno));
	if ((size_t)n < SELFMAG || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
		return 0;
	if ((size_t)n < sizeof(eh) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 256)
		return err_set(e, "%s: not an ELF64 program", path);
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) !=
		    (ssize_t)sizeof(ph))
			return err_set(e, "%s: program header %u is truncated", path, i);
		if (ph.p_type != PT_INTERP)
			continue;
		if (ph.p_filesz < 2 || ph.p_filesz > cap)
			return err_set(e, "%s: PT_INTERP of %llu bytes", path,
				       (unsigned long long)ph.p_filesz);
		if (pread(fd, interp, ph.p_filesz, (off_t)ph.p_offset) != (ssize_t)ph.p_filesz ||
		    interp[ph.p_filesz - 1] != '\0' || interp[0] != '/')
			return err_set(e, "%s: bad PT_INTERP", path);
		return 1;
	}
	return 1;
}

/* Run "INTERP --list PROGRAM" with an empty environment; its output in BUF
 * (NUL-terminated). */
static int loader_list(const char *interp, const char *program, char *buf, size_t cap,
		       struct errbuf *e)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return err_set(e, "listing the libraries of %s: pipe: %s", program,
			       strerror(errno));
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	char *argv[] = {(char *)interp, "--list", (char *)program, NULL};
	char *envp[] = {NULL};
	pid_t pid;
	int rc = posix_spawn(&pid, interp, &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (rc != 0) {
		close(p[0]);
		return err_set(e, "listing the libraries of %s: %s: %s", program, interp,
			       strerror(rc));
	}
	size_t len = 0;
	for (;;) {
		ssize_t n = read(p[0], buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == cap - 1)
			break;
	}
	buf[len] = '\0';
	close(p[0]);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return err_set(e, "listing the libraries of %s: %s --list failed (status %d)",
			       program, interp, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return 0;
}

/* Add the absolute paths of the loader's listing: "name => /path (0x...)",
 * "/path (0x...)"; "name (0x...)" (the vDSO) has no file. */
static int add_listed(struct sandbox_landlock *ll, const char *program, char *list,
		      struct errbuf *e)
{
	char *save = NULL;
	for (char *line = strtok_r(list, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strstr(line, "=> not found") != NULL)
			return err_set(e, "%s: library %s", program, line + strspn(line, " \t"));
		char *path = strstr(line, "=> ");
		path = path ? path + 3 : line + strspn(line, " \t");
		if (path[0] != '/')
			continue;
		char *end = strstr(path, " (0x");
		if (end != NULL)
			*end = '\0';
		if (sandbox_landlock_add(ll, path, e) != 0)
			return err_prefix(e, "%s", program);
	}
	return 0;
}

int sandbox_landlock_prepare(struct sandbox_landlock *ll, const char *program, struct errbuf *e)
{
	memset(ll, 0, sizeof(*ll));
	ll->abi = sandbox_landlock_abi();
	if (ll->abi <= 0)
		return err_set(e, "Landlock is not available (kernel without it, or disabled)");
	/* A program that cannot be started: the message of its exec. */
	int fd = open(program, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, "cannot execute %s: %s", program, strerror(errno));
	if (sandbox_landlock_add(ll, program, e) != 0) {
		close(fd);
		return -1;
	}
	char interp[256];
	int elf = elf_interp(program, fd, interp, sizeof(interp), e);
	close(fd);
	if (elf < 0)
		return -1;
	if (elf == 0) {
		/* A script: its interpreter may be anywhere in the system's
		 * directories, with its libraries. */
		static const char *const sys[] = {"/usr", "/bin", "/lib", "/lib64",
						  "/etc/ld.so.cache"};
		for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
			if (access(sys[i], F_OK) == 0 && sandbox_landlock_add(ll, sys[i], e) != 0)
				return -1;
	} else if (interp[0] != '\0') {
		char *list = malloc(LIST_MAX);
		if (list == NULL)
			return err_set(e, "%s: out of memory", program);
		int rc = loader_list(interp, program, list, LIST_MAX, e);
		if (rc == 0)
			rc = add_listed(ll, program, list, e);
		free(list);
		if (rc != 0)
			return -1;
		if (sandbox_landlock_add(ll, interp, e) != 0)
			return -1;
		/* The loader reads its cache, and the preload list when there
		 * is one (the objects it names are in the listing). */
		static const char *const etc[] = {"/etc/ld.so.cache", "/etc/ld.so.preload"};
		for (size_t i = 0; i < 2; i++)
			if (access(etc[i], F_OK) == 0 && sandbox_landlock_add(ll, etc[i], e) != 0)
				return -1;
	}
#ifdef VMMUX_SANITIZED
	/* The sanitizer runtimes read /proc/self (maps, cmdline, environ,
	 * exe) at start-up and in their reports. Another process's entries
	 * that need ptrace access stay out of reach (Landlock's ptrace rule);
	 * world-readable ones (stat, status, cmdline) do not. */
	if (sandbox_landlock_add(ll, "/proc", e) != 0)
		return -1;
#endif
	return 0;
}

int sandbox_landlock_ruleset(const struct sandbox_landlock *ll)
{
	if (ll == NULL || ll->abi <= 0 || ll->nfiles > SANDBOX_LL_FILES_MAX) {
		errno = EINVAL;
		return -1;
	}
	struct ll_ruleset_attr attr = {.handled_access_fs = handled_fs(ll->abi)};
	size_t size = sizeof(uint64_t);
	if (ll->abi >= 4) {
		attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
		size = 2 * sizeof(uint64_t);
	}
	if (ll->abi >= 6) {
		attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
		size = sizeof(attr);
	}
	int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (rs < 0)
		return -1;
	for (unsigned i = 0; i < ll->nfiles; i++) {
		int fd = open(ll->names + ll->at[i], O_PATH | O_CLOEXEC);
		if (fd < 0)
			goto fail;
		struct landlock_path_beneath_attr pb = {
		    .allowed_access = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_EXECUTE,
		    .parent_fd = fd,
		};
		if (ll->dir[i])
			pb.allowed_access |= LANDLOCK_ACCESS_FS_READ_DIR;
		long r = syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
		int err = errno;
		close(fd);
		if (r != 0) {
			errno = err;
			goto fail;
		}
	}
	return rs;
fail : {
	int err = errno;
	close(rs);
	errno = err;
	return -1;
}
}

int sandbox_landlock_restrict(int ruleset)
{
	return (int)syscall(SYS_landlock_restrict_self, ruleset, 0);
}
