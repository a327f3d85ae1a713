/*
 * proc.h: what the kernel says of a process in /proc/PID/stat.
 */
#ifndef VMMUX_UTIL_PROC_H
#define VMMUX_UTIL_PROC_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Read /proc/PID/stat into BUF (CAP bytes, NUL-terminated) and return the
 * fields after the command, from the space before the state (" S ppid
 * pgrp ..."), for sscanf; NULL when it cannot be read. The command may
 * hold spaces and parentheses: the last ')' ends it.
 */
const char *proc_stat_fields(pid_t pid, char *buf, size_t cap);

#endif
