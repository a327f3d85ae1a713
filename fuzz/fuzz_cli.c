/*
 * fuzz_cli.c: the command line of `vmmux run` (src/cli/cli_parse.c:
 * cli_parse_run, getopt_long over every option, each value through the
 * shared parsers: sizes, numbers, route specs, --vmm, --initrd, --break
 * ...), then config_finish on what it gave, as `vmmux run` does.
 *
 * Input: the arguments, separated by NUL bytes (argv[0] is "run"). An
 * argument that names a file under /dev or /proc is dropped: --config
 * /dev/stdin would wait for a terminal, which is the option's meaning, not
 * a bug.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "fuzz.h"

#define ARGS_MAX 48

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	if (buf == NULL)
		abort();
	memcpy(buf, data, size);
	buf[size] = '\0';
	char *argv[ARGS_MAX + 2];
	int argc = 0;
	argv[argc++] = "run";
	for (char *p = buf; p < buf + size && argc < ARGS_MAX; p += strlen(p) + 1) {
		if (strstr(p, "/dev") != NULL || strstr(p, "/proc") != NULL)
			continue;
		argv[argc++] = p;
	}
	argv[argc] = NULL;
	struct vmmux_config c;
	struct errbuf e;
	config_init(&c);
	int rc = cli_parse_run(argc, argv, &c, &e);
	if (rc == 0 && config_finish(&c, &e) == 0)
		fz_quiet(); /* config_finish set the config's log level */
	else if (rc < 0 && e.msg[0] == '\0')
		abort(); /* a refusal says why */
	fz_quiet();
	config_free(&c);
	free(buf);
	return 0;
}
