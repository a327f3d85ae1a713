#!/bin/sh
# Install the Debian packages given as arguments when any is missing.
# Used by `make demo` and `make check`; VMMUX_NO_APT=1 skips it.
set -eu
[ "${VMMUX_NO_APT:-0}" = 1 ] && exit 0
missing=""
for p in "$@"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "vmmux: these Debian packages are missing:$missing" >&2
	echo "vmmux: run as root (or install them) and try again" >&2
	exit 1
fi
echo "vmmux: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh debootstrap root has no package lists yet.
if ! apt-get install -y --no-install-recommends $missing; then
	apt-get update
	apt-get install -y --no-install-recommends $missing
fi
