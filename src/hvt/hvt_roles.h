/*
 * hvt_roles.h: the built-in roles of the Solo5 hvt host, for the role table
 * (vmms/roles.c). Each is written against include/vmmux/vmmux.h only, so it
 * links into any program that serves roles (the machine's part of an hvt
 * guest is the main VMM's, src/hvt/hvt_core.c, not a role):
 *   hvt-console  puts (src/hvt/hvt_console.c)
 *   hvt-block    block read/write on one disk image (vmms/block/block.c)
 *   hvt-net      net read/write on one tap, readiness (vmms/net/net.c)
 */
#ifndef VMMUX_HVT_HVT_ROLES_H
#define VMMUX_HVT_HVT_ROLES_H

#include <vmmux/vmmux.h>

extern const struct vmmux_role hvt_console_role;
extern const struct vmmux_role vmmux_role_hvt_block;
extern const struct vmmux_role vmmux_role_hvt_net;

#endif
