#!/bin/sh
# nocbridge post-remove, for the .deb (postrm remove|purge|…) and the .rpm
# (%postun N). A purge removes the files the post-install made; the state
# (/var/lib/nocbridge), the logs and the user stay, as does anything of yours.
set -e
root="${DPKG_ROOT:-}"
if [ "$1" = purge ]; then
	for f in secrets/http-token secrets/itsm-signing secrets/snmp-community secrets/snmp-auth \
		secrets/snmp-priv secrets/itsm secrets/slack-webhook secrets/pagerduty \
		tls/cert.pem tls/key.pem itsm-ca.pem; do
		rm -f "$root/etc/nocbridge/$f"
	done
	rmdir "$root/etc/nocbridge/secrets" "$root/etc/nocbridge/tls" "$root/etc/nocbridge/rules" "$root/etc/nocbridge" 2>/dev/null || true
fi
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
exit 0
