#!/bin/sh
# nocbridge pre-remove, for the .deb (prerm remove|upgrade|…) and the .rpm
# (%preun N: 0 on erase, 1 on upgrade): a removal stops the service first;
# an upgrade leaves it to the post-install's try-restart.
set -e
case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	systemctl stop nocbridge.service || true
fi
exit 0
