/*
 * fwcfg.h: the "fwcfg" role, QEMU's firmware configuration interface at
 * ports 0x510/0x511 (vmms/fwcfg/fwcfg.c, vmms/README.md). Its own header so
 * that the role table (vmms/roles.c) can list it.
 */
#ifndef VMMUX_VMMS_FWCFG_H
#define VMMUX_VMMS_FWCFG_H

#include <vmmux/vmmux.h>

extern const struct vmmux_role vmmux_role_fwcfg; /* "fwcfg" */

#endif
