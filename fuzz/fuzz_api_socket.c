/*
 * fuzz_api_socket.c: the control socket's framing (src/api/server.c) driven
 * through a real socket, with the real request handling behind it: the
 * server is opened (api_open, in a private temporary directory), a client
 * connects and sends the input in chunks of fuzzed sizes, and the control
 * thread's loop (api_poll_fds, api_ready) is run in between, so that lines
 * split across reads, several lines in one read, blank lines, a line
 * longer than API_LINE_MAX (the input repeated), a client that closes its
 * side early and one that stops reading are all reached. Live changes are
 * handed to the worker queue and, as no worker runs here, stay there until
 * the client goes (api_close drops them); fuzz_api runs the commands
 * themselves. Every reply the client reads must be one JSON object per
 * line with "ok".
 *
 * Input: two bytes of choices (chunk size; repeat the payload to make a
 * long line; close the sending side early; read the replies or not), then
 * the bytes the client sends.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/api.h"
#include "registry.h"

/* On tmpfs: the server's set-up is a few file-system operations per
 * input (a private directory, bind, rename), which a disk's journal makes
 * slower than the rest of the input. */
static char tmpdir[64] = "/dev/shm/vmmux-fuzz-api.XXXXXX";
static char sock_path[128];

static const char config_json[] =
    "{\"machine\": {\"mem\": \"4M\", \"cpus\": 1, \"irqchip\": false},"
    " \"vmms\": [{\"name\": \"sink\", \"role\": \"sink\"}],"
    " \"routes\": [\"io:0x80=sink\"]}";

static void cleanup(void)
{
	unlink(sock_path);
	rmdir(tmpdir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	if (mkdtemp(tmpdir) == NULL) {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/vmmux-fuzz-api.XXXXXX");
		if (mkdtemp(tmpdir) == NULL)
			abort();
	}
	snprintf(sock_path, sizeof(sock_path), "%s/api.sock", tmpdir);
	atexit(cleanup);
	fzr_up(config_json, NULL);
	return 0;
}

/* Run the control thread's loop until nothing is ready. */
static void serve(void)
{
	int fds[4];
	unsigned n = api_poll_fds(fds, 4);
	struct pollfd p[4];
	for (unsigned i = 0; i < n; i++)
		p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
	for (unsigned round = 0; round < 64 && poll(p, n, 0) > 0; round++)
		for (unsigned i = 0; i < n; i++)
			if (p[i].revents)
				api_ready(fds[i]);
}

/* Check and drop the complete reply lines in BUF. */
static void replies(char *buf, size_t *len)
{
	char *nl, *start = buf;
	while ((nl = memchr(start, '\n', *len - (size_t)(start - buf))) != NULL) {
		json_error_t je;
		json_t *r = json_loadb(start, (size_t)(nl - start), 0, &je);
		if (!json_is_object(r) || !json_is_boolean(json_object_get(r, "ok")))
			abort(); /* not a reply */
		json_decref(r);
		start = nl + 1;
	}
	*len -= (size_t)(start - buf);
	memmove(buf, start, *len);
}

static char rbuf[(2u << 20)];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	uint8_t a = fz_u8(&f), b = fz_u8(&f);
	size_t chunk = 1 + (size_t)a * 4;
	unsigned repeat = (b & 1) ? (unsigned)(API_LINE_MAX / (f.n ? f.n : 1) + 2) : 1;
	bool early_close = b & 2, reading = !(b & 4);
	if (repeat > 4096)
		repeat = 4096;
	if (repeat > 1 && chunk < 4096)
		chunk = 4096; /* a long line in few reads */
	struct errbuf e;
	fzr_reset_routes();
	if (api_open(sock_path, &e) < 0) {
		fprintf(stderr, "%s\n", e.msg);
		abort();
	}
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		abort();
	fcntl(c, F_SETFL, O_NONBLOCK);
	serve(); /* accepted */
	size_t rlen = 0;
	bool closed = false, stop = false;
	unsigned stalls = 0;
	for (unsigned r = 0; r < repeat && !closed && !stop; r++) {
		for (size_t off = 0; off < f.n && !closed && !stop;) {
			size_t k = f.n - off < chunk ? f.n - off : chunk;
			ssize_t w = send(c, f.p + off, k, MSG_NOSIGNAL | MSG_DONTWAIT);
			int err = errno;
			if (w < 0 && err != EAGAIN && err != EWOULDBLOCK)
				closed = true; /* the server dropped the client */
			if (w > 0) {
				off += (size_t)w;
				stalls = 0;
			} else if (w < 0 && ++stalls > 8) {
				/* the server does not read this client now (a live
				 * change waits for the worker, or its replies are not
				 * read): the client gives up sending */
				stop = true;
			}
			serve();
			if (reading && rlen < sizeof(rbuf)) {
				ssize_t n = recv(c, rbuf + rlen, sizeof(rbuf) - rlen, MSG_DONTWAIT);
				if (n == 0)
					closed = true;
				if (n > 0) {
					rlen += (size_t)n;
					replies(rbuf, &rlen);
				}
			}
		}
		if (early_close && r == 0)
			break;
	}
	shutdown(c, SHUT_WR);
	for (unsigned round = 0; round < 16 && !closed; round++) {
		serve();
		ssize_t n = recv(c, rbuf + rlen, sizeof(rbuf) - rlen, MSG_DONTWAIT);
		if (n == 0)
			closed = true;
		if (n > 0) {
			rlen += (size_t)n;
			replies(rbuf, &rlen);
		}
	}
	close(c);
	serve();
	api_close();
	return 0;
}
