/*
 * smm.c: the APM control ports and an SMI handler (role "smm").
 *
 * KVM's SMM is not available on these hosts, so an SMI is a vmmux platform
 * event: a write to 0xB2 (APM_CNT) raises VMMUX_EV_PLATFORM with key
 * VMMUX_PLAT_SMI and value = the command byte, on behalf of the writing
 * vCPU. The routing table decides who services it; with a route
 * platform:smi=<this VMM> the event comes back here and the role services it:
 * it counts it, records the command, logs it at info level and sets APM_STS
 * (0xB3) to the number of SMIs serviced mod 256.
 *
 * Registers (byte lanes: a word access at 0xB2 covers 0xB2 and 0xB3):
 *   0xB2  APM_CNT: a write raises the SMI; reads return the last command.
 *   0xB3  APM_STS: scratch register, read/write; set by each serviced SMI.
 * Bytes of an access on other ports read as ones and are ignored on write.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <vmmux/vmmux.h>

#include "../role_util.h"
#include "../roles.h"

#define PORT_APM_CNT 0xb2
#define PORT_APM_STS 0xb3

#define SMM_STATE_MAGIC	  0x534d4d53u /* "SMMS" */
#define SMM_STATE_VERSION 1

struct smm {
	uint8_t cnt;	  /* last command written to APM_CNT */
	uint8_t sts;	  /* APM_STS */
	uint8_t last_cmd; /* command of the last serviced SMI */
	uint64_t serviced;
};

struct smm_state_v1 {
	struct role_state_hdr hdr;
	uint8_t cnt, sts, last_cmd, reserved[5];
	uint64_t serviced;
};
_Static_assert(sizeof(struct smm_state_v1) == 24, "smm state layout");

static int smm_service(struct vmmux_ctx *ctx, struct smm *s, const struct vmmux_event *ev)
{
	s->serviced++;
	s->last_cmd = (uint8_t)ev->value;
	s->sts = (uint8_t)s->serviced;
	vmmux_log(ctx, VMMUX_LOG_INFO, "SMI %llu serviced: APM command 0x%02x, APM_STS 0x%02x",
		  (unsigned long long)s->serviced, s->last_cmd, s->sts);
	return 0;
}

static int smm_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev, struct vmmux_reply *rep)
{
	struct smm *s = vmmux_priv(ctx);
	bool write = ev->flags & VMMUX_EVF_WRITE;
	uint64_t reply = 0;
	int ret = 0;

	if (ev->type == VMMUX_EV_PLATFORM) {
		if (ev->key != VMMUX_PLAT_SMI || ev->value > 0xff)
			return -EINVAL;
		return smm_service(ctx, s, ev);
	}
	if (!role_is_plain_io(ev) || ev->key > 0xffff)
		return -EINVAL;

	for (unsigned i = 0; i < ev->size; i++) {
		uint64_t port = ev->key + i;
		uint8_t byte = (uint8_t)(ev->value >> (8 * i));
		uint8_t out = 0xff;

		if (port == PORT_APM_CNT) {
			if (write) {
				s->cnt = byte;
				if (role_raise(ctx, VMMUX_EV_PLATFORM, 0, VMMUX_PLAT_SMI, byte, 0,
					       ev->vcpu) < 0)
					ret = -EAGAIN;
			}
			out = s->cnt;
		} else if (port == PORT_APM_STS) {
			if (write)
				s->sts = byte;
			out = s->sts;
		}
		reply |= (uint64_t)out << (8 * i);
	}
	if (!write)
		rep->value = reply;
	return ret;
}

static void smm_reset(struct vmmux_ctx *ctx)
{
	struct smm *s = vmmux_priv(ctx);

	memset(s, 0, sizeof(*s));
}

static long smm_save(struct vmmux_ctx *ctx, void *buf, size_t cap)
{
	struct smm *s = vmmux_priv(ctx);
	struct smm_state_v1 st;

	if (!buf || cap < sizeof(st))
		return -1;
	memset(&st, 0, sizeof(st));
	st.hdr.magic = SMM_STATE_MAGIC;
	st.hdr.version = SMM_STATE_VERSION;
	st.hdr.size = sizeof(st);
	st.cnt = s->cnt;
	st.sts = s->sts;
	st.last_cmd = s->last_cmd;
	st.serviced = s->serviced;
	memcpy(buf, &st, sizeof(st));
	return sizeof(st);
}

static int smm_restore(struct vmmux_ctx *ctx, const void *buf, size_t len)
{
	struct smm *s = vmmux_priv(ctx);
	struct smm_state_v1 st;

	if (!buf || len != sizeof(st)) {
		vmmux_log(ctx, VMMUX_LOG_ERROR, "restore: state of %zu bytes, expected %zu", len,
			  sizeof(st));
		return -EINVAL;
	}
	memcpy(&st, buf, sizeof(st));
	if (st.hdr.magic != SMM_STATE_MAGIC || st.hdr.version != SMM_STATE_VERSION ||
	    st.hdr.size != sizeof(st)) {
		vmmux_log(ctx, VMMUX_LOG_ERROR, "restore: not an smm state (magic or version)");
		return -EINVAL;
	}
	s->cnt = st.cnt;
	s->sts = st.sts;
	s->last_cmd = st.last_cmd;
	s->serviced = st.serviced;
	return 0;
}

static const char *const smm_raises[] = {"platform:smi", NULL};

const struct vmmux_role vmmux_role_smm = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "smm",
    .summary = "APM ports 0xB2/0xB3: a write to 0xB2 raises an SMI, which this role services",
    .priv_size = sizeof(struct smm),
    .handle = smm_handle,
    .reset = smm_reset,
    .save = smm_save,
    .restore = smm_restore,
    .raises = smm_raises,
};
