#!/bin/sh
# nocbridge post-install, for the .deb (postinst configure [OLD-VERSION]) and
# the .rpm (%post N: 1 on install, 2 and up on upgrade).
# It creates the user and the folders, and on the first install the files the
# shipped /etc/nocbridge/nocbridge.yaml names, with values made on this machine
# (nothing secret is in the package). It enables and starts nothing; on an
# upgrade it restarts nocbridge only if it is running.
# DPKG_ROOT (dpkg --root --force-script-chrootless) installs into another root:
# every path below is under it, and the running system is left alone.
set -e

root="${DPKG_ROOT:-}"
case "$1" in
configure) if [ -z "$2" ]; then first=yes; else first=no; fi ;;
1) first=yes ;;
[0-9]*) first=no ;;
*) exit 0 ;; # abort-upgrade, abort-remove…: nothing to redo
esac

# The user and group (the package's sysusers file), else useradd.
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers --root="$root/" nocbridge.conf
elif ! grep -q '^nocbridge:' "$root/etc/passwd" 2>/dev/null; then
	useradd --root "$root/" --system --user-group --home-dir /var/lib/nocbridge \
		--no-create-home --shell /usr/sbin/nologin --comment "nocbridge alert bridge" nocbridge
fi
uid=$(awk -F: '$1 == "nocbridge" { print $3 }' "$root/etc/passwd")
gid=$(awk -F: '$1 == "nocbridge" { print $3 }' "$root/etc/group")
if [ -z "$uid" ] || [ -z "$gid" ]; then
	echo "nocbridge: the user nocbridge is not in $root/etc/passwd and $root/etc/group" >&2
	exit 1
fi

# Folders and the config's mode and group (the package's tmpfiles file).
if command -v systemd-tmpfiles >/dev/null 2>&1; then
	systemd-tmpfiles --root="$root/" --create nocbridge.conf
else
	for d in /etc/nocbridge /etc/nocbridge/rules /etc/nocbridge/secrets /etc/nocbridge/tls; do
		mkdir -p "$root$d" && chown "0:$gid" "$root$d" && chmod 0750 "$root$d"
	done
	for d in /var/lib/nocbridge /var/log/nocbridge; do
		mkdir -p "$root$d" && chown "$uid:$gid" "$root$d" && chmod 0750 "$root$d"
	done
	for f in "$root"/etc/nocbridge/nocbridge.yaml "$root"/etc/nocbridge/rules/*.yaml; do
		[ -f "$f" ] && chown "0:$gid" "$f" && chmod 0640 "$f"
	done
fi

# random N: N bytes from the kernel's generator, base64url without padding.
random() {
	head -c "$1" /dev/urandom | base64 | tr -d '\n=' | tr '+/' '-_'
}

# secret FILE VALUE: writes a secret the way the README asks for (0600, the
# user's), unless the file exists: an operator's file is never replaced.
secret() {
	[ -e "$root$1" ] && return 0
	(umask 077 && printf '%s\n' "$2" >"$root$1.new")
	chown "$uid:$gid" "$root$1.new"
	mv "$root$1.new" "$root$1"
	echo "nocbridge: created $1"
}

# selfsigned CERT KEY SUBJECT [SAN]: a certificate and its key, both new.
selfsigned() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 825 \
		-subj "$3" ${4:+-addext "subjectAltName=$4"} -keyout "$2" -out "$1" 2>/dev/null
}

if [ "$first" = yes ]; then
	# What nocbridge itself chooses: values to use as they are.
	secret /etc/nocbridge/secrets/http-token "$(random 32)"       # the API's bearer token
	secret /etc/nocbridge/secrets/itsm-signing "whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')" # give it to the receiver
	# What you configure on devices and accounts too: strong values to use, or replace.
	secret /etc/nocbridge/secrets/snmp-community "$(random 18)"
	secret /etc/nocbridge/secrets/snmp-auth "$(random 24)"
	secret /etc/nocbridge/secrets/snmp-priv "$(random 24)"
	secret /etc/nocbridge/secrets/itsm "$(random 24)"
	# What only the service can issue: placeholders that fail closed (they are
	# refused, so nothing is sent) until replaced.
	secret /etc/nocbridge/secrets/slack-webhook "https://hooks.slack.com/services/REPLACE/WITH/YOURS"
	secret /etc/nocbridge/secrets/pagerduty "REPLACE-WITH-YOUR-EVENTS-V2-INTEGRATION-KEY"

	# The API's HTTPS certificate: self-signed for this host, until you have one.
	if [ ! -e "$root/etc/nocbridge/tls/cert.pem" ] && [ ! -e "$root/etc/nocbridge/tls/key.pem" ]; then
		host=$(uname -n)
		(umask 077 && selfsigned "$root/etc/nocbridge/tls/cert.pem" "$root/etc/nocbridge/tls/key.pem" \
			"/CN=$host" "DNS:$host,DNS:localhost,IP:127.0.0.1,IP:::1")
		chown "$uid:$gid" "$root/etc/nocbridge/tls/key.pem"
		chown "0:$gid" "$root/etc/nocbridge/tls/cert.pem"
		chmod 0600 "$root/etc/nocbridge/tls/key.pem"
		chmod 0640 "$root/etc/nocbridge/tls/cert.pem"
		echo "nocbridge: created a self-signed certificate for $host in /etc/nocbridge/tls"
	fi
	# The ITSM's private CA: a placeholder CA whose key is thrown away, so
	# no server can present a certificate it trusts (fails closed).
	if [ ! -e "$root/etc/nocbridge/itsm-ca.pem" ]; then
		(umask 022 && selfsigned "$root/etc/nocbridge/itsm-ca.pem" /dev/null \
			"/CN=placeholder: replace with the CA of your ITSM")
		chown "0:$gid" "$root/etc/nocbridge/itsm-ca.pem"
		chmod 0640 "$root/etc/nocbridge/itsm-ca.pem"
	fi
fi

# The running system only: let systemd see the new unit; an upgrade restarts
# nocbridge if (and only if) it runs.
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if [ "$first" = no ]; then
		systemctl try-restart nocbridge.service || true
	fi
fi
exit 0
