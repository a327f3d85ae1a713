/*
 * fuzz_config.c: the JSON config loader (src/config: config_load_json_string,
 * config_finish with its defaults and whole-config checks), then what
 * `vmmux routes` and the registry make of a loaded config without starting
 * anything: the routing table (route_table_build over config_vmm_resolve)
 * and each VMM's role and arguments (vmm_config_check).
 *
 * Input: one byte of choices (finish with or without requiring a kernel, a
 * base directory or none), then the config text.
 */
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "fuzz.h"
#include "route/table.h"
#include "vmm/vmm.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	uint8_t b = fz_u8(&f);
	char *text = malloc(f.n + 1);
	if (text == NULL)
		abort();
	memcpy(text, f.p, f.n);
	text[f.n] = '\0';
	struct vmmux_config c;
	struct errbuf e;
	config_init(&c);
	int rc = config_load_json_string(&c, "fuzz.json", text, (b & 1) ? "/etc/vmmux" : NULL, &e);
	if (rc < 0 && strstr(e.msg, "fuzz.json") == NULL)
		abort(); /* every refusal of the file names it */
	if (rc == 0 && config_finish_flags(&c, (b & 2) ? CONFIG_FINISH_NO_KERNEL : 0, &e) == 0) {
		fz_quiet(); /* config_finish set the config's log level */
		struct route_table *t =
		    route_table_build(c.routes, c.nroutes, config_vmm_resolve, &c, &e);
		route_table_free(t);
		for (size_t i = 0; i < c.nvmms; i++)
			vmm_config_check(&c.vmms[i], &e);
	}
	fz_quiet();
	config_free(&c);
	free(text);
	return 0;
}
