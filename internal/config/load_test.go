package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// invalidConfigs is the exact error text each testdata/invalid-*.yaml file
// must produce: every problem, sorted, as FILE:LINE: message.
var invalidConfigs = map[string][]string{
	"invalid-cluster.yaml": {
		`testdata/invalid-cluster.yaml:4: cluster: name "noc east" must be 1..64 letters, digits, _ or -`,
		`testdata/invalid-cluster.yaml:5: cluster: node "localhost" is a name every machine would share: give each node its own (nb1, nb2, …)`,
		`testdata/invalid-cluster.yaml:6: cluster: listen "0.0.0.0" must be host:port, such as 127.0.0.1:9720 or [::1]:9720`,
		`testdata/invalid-cluster.yaml:9: cluster: peers[1] "http://user:xxxxx@nb3.example.net:6222" must be nats://host:port (the peer's cluster listen address)`,
		`testdata/invalid-cluster.yaml:10: cluster: peers[2] nb2.example.net:6222 is given twice (first as peers[0])`,
		`testdata/invalid-cluster.yaml:11: cluster: peers[3] "nats://nb4.example.net" must be nats://host:port (the peer's cluster listen address)`,
		`testdata/invalid-cluster.yaml:12: cluster: peers[4] "nats://0.0.0.0:6222/x" must be nats://host:port, without a path or query`,
		`testdata/invalid-cluster.yaml:14: cluster: tls: cannot load the certificate and key: tls: failed to find any PEM data in certificate input`,
		`testdata/invalid-cluster.yaml:16: cluster: tls: ca_file invalid-cluster.yaml holds no PEM certificate`,
		`testdata/invalid-cluster.yaml:17: cluster: down_when "some" must be all or majority`,
	},
	"invalid-cluster-remote.yaml": {
		`testdata/invalid-cluster-remote.yaml:2: store: sync applies to the embedded server only; with store.nats_url the NATS server's own sync setting decides`,
		`testdata/invalid-cluster-remote.yaml:3: store: nats_url http://nats2.example.net:4222 must be nats://host:port or tls://host:port (several separated by commas)`,
		`testdata/invalid-cluster-remote.yaml:4: cluster: name is required (the NATS cluster name, the same on every node)`,
		`testdata/invalid-cluster-remote.yaml:6: cluster: listen configures the embedded server's routes and cannot be used with store.nats_url (the existing NATS cluster routes itself)`,
		`testdata/invalid-cluster-remote.yaml:7: cluster: peers configures the embedded server's routes and cannot be used with store.nats_url (the existing NATS cluster routes itself)`,
	},
	"invalid-cluster-null.yaml": {
		`testdata/invalid-cluster-null.yaml:1: cluster: section is empty: give name, node, listen and peers, or remove it`,
	},
	"invalid-edge.yaml": {
		`testdata/invalid-edge.yaml:6: edge: cannot be combined with cluster: an edge site runs one collector, a leaf node of its hub`,
		`testdata/invalid-edge.yaml:7: edge: hub "http://user:xxxxx@hub.example.net:7422" must be nats-leaf://host:port or tls://host:port (the hub's leaf listener)`,
		`testdata/invalid-edge.yaml:8: edge: site "nocbridge_hub" is the hub's own JetStream domain: choose another name`,
		`testdata/invalid-edge.yaml:9: edge: buffer 10KiB is too small: at least 1MiB (default 1GiB)`,
	},
	"invalid-edge-fields.yaml": {
		`testdata/invalid-edge-fields.yaml:2: edge: hub tls://hub.example.net:7422 is tls:// but edge has no tls: give tls with cert_file, key_file and ca_file`,
		`testdata/invalid-edge-fields.yaml:3: edge: site "BR9" has no device in devices: an edge probes the devices of its site`,
		`testdata/invalid-edge-fields.yaml:4: edge: buffer: invalid size: "lots" is not a size such as 1GiB, 512MiB or 10MB`,
	},
	"invalid-hub.yaml": {
		`testdata/invalid-hub.yaml:2: hub: cannot be combined with cluster: yet: every node of a cluster would read the edge sites' records, each a part, out of order`,
		`testdata/invalid-hub.yaml:3: hub: listen "0.0.0.0:0" needs a fixed port: edges connect to it`,
		`testdata/invalid-hub.yaml:4: hub: sites[1] BR1 is given twice (first as sites[0])`,
		`testdata/invalid-hub.yaml:4: hub: sites[2] "B R" must be 1..64 letters, digits, _ or -`,
		`testdata/invalid-hub.yaml:4: hub: sites[3] BR2 has no device in devices: give its devices with site: BR2`,
		`testdata/invalid-hub.yaml:5: hub: unreachable_after must be a positive duration such as 30s`,
	},
	"invalid-hub-null.yaml": {
		`testdata/invalid-hub-null.yaml:1: hub: section is empty: give sites (and listen), or remove it`,
		`testdata/invalid-hub-null.yaml:2: edge: section is empty: give hub and site, or remove it`,
	},
	"invalid-destinations.yaml": {
		`testdata/invalid-destinations.yaml:2: destinations[0]: name is required`,
		`testdata/invalid-destinations.yaml:6: destination "hook": timeout must not be negative`,
		`testdata/invalid-destinations.yaml:7: destination "hook": retry max_age must be positive`,
		`testdata/invalid-destinations.yaml:7: destination "hook": retry probe_interval must be positive`,
		`testdata/invalid-destinations.yaml:7: destination "hook": retry initial 10m0s is longer than retry max 1m0s`,
		`testdata/invalid-destinations.yaml:8: destination "hook": rate_limit must be a number >= 0 (notifications per second; 0 means no limit)`,
		`testdata/invalid-destinations.yaml:9: destination "hook": proxy_url ftp://user:xxxxx@proxy.example.com must be an http://, https:// or socks5:// URL with a host`,
		`testdata/invalid-destinations.yaml:10: duplicate destination name "hook" (first at line 3)`,
		`testdata/invalid-destinations.yaml:12: destination "hook": proxy_url is not a valid URL`,
		`testdata/invalid-destinations.yaml:13: destination "typeless": type is required (webhook, slack, pagerduty, log, …)`,
	},
	"invalid-devices.yaml": {
		`testdata/invalid-devices.yaml:6: device "core": address "10.0.0.256" is not an IPv4 or IPv6 address or a DNS name`,
		`testdata/invalid-devices.yaml:7: devices[1]: name is required`,
		`testdata/invalid-devices.yaml:9: device "edge": address "-bad-.example.com" is not an IPv4 or IPv6 address or a DNS name`,
		`testdata/invalid-devices.yaml:10: device "edge": snmp profile "nope" is not defined under snmp.profiles`,
		`testdata/invalid-devices.yaml:11: device "edge": parent "ghost" is not a device`,
		`testdata/invalid-devices.yaml:12: duplicate device name "core" (first at line 5)`,
		`testdata/invalid-devices.yaml:15: device "a": address "[2001:db8::1]" is not an IPv4 or IPv6 address or a DNS name`,
		`testdata/invalid-devices.yaml:22: device "c": parents form a cycle: a -> b -> c -> a`,
		`testdata/invalid-devices.yaml:24: device "self": parents form a cycle: self -> self`,
		`testdata/invalid-devices.yaml:28: device "fast" icmp: count 0 must be 1..100 echoes per round`,
		`testdata/invalid-devices.yaml:31: device "slow" icmp: a round takes up to 30s, longer than the 10s interval: a round must end before the next one starts; raise interval or lower timeout or count`,
	},
	"invalid-duplicate-keys.yaml": {
		`testdata/invalid-duplicate-keys.yaml:3: duplicate key "interval" in icmp (first at line 2)`,
		`testdata/invalid-duplicate-keys.yaml:7: duplicate key "name" in device "sw1" (first at line 5)`,
	},
	"invalid-external-url.yaml": {
		`testdata/invalid-external-url.yaml:1: external_url https://nocbridge.example.com/?x=1 must not have a query or fragment: alert paths are appended to it`,
		`testdata/invalid-external-url.yaml:3: http: listen "bad host!:9720": host "bad host!" is not an IP address or a DNS name`,
		`testdata/invalid-external-url.yaml:5: store: sync "-1s" must be always or a positive duration such as 1s`,
	},
	"invalid-http.yaml": {
		`testdata/invalid-http.yaml:1: external_url ftp://nocbridge.example.com must be an absolute http:// or https:// URL`,
		`testdata/invalid-http.yaml:3: http: listen "localhost" must be host:port, such as 127.0.0.1:9720 or [::1]:9720`,
		`testdata/invalid-http.yaml:4: http: token is empty`,
		`testdata/invalid-http.yaml:5: rules[0] "rules/[a-.yaml": syntax error in pattern`,
		`testdata/invalid-http.yaml:5: rules[1] is empty`,
		`testdata/invalid-http.yaml:7: store: sync "sometimes" must be always or a positive duration such as 1s`,
	},
	"invalid-icmp-round.yaml": {
		`testdata/invalid-icmp-round.yaml:3: icmp: a round takes up to 4.7s (8 echoes × 500ms timeout + 7 × 100ms spacing), longer than the 1s interval: a round must end before the next one starts; raise interval or lower timeout or count`,
	},
	"invalid-icmp.yaml": {
		`testdata/invalid-icmp.yaml:2: icmp: interval must be positive`,
		`testdata/invalid-icmp.yaml:3: icmp: timeout must be positive`,
		`testdata/invalid-icmp.yaml:4: icmp: count 101 must be 1..100 echoes per round`,
		`testdata/invalid-icmp.yaml:5: icmp: privileged "sometimes" must be auto, true or false`,
	},
	"invalid-maintenance.yaml": {
		`testdata/invalid-maintenance.yaml:3: maintenance "weekly" match: devices[0] "core-\\" is not a valid glob: syntax error in pattern`,
		`testdata/invalid-maintenance.yaml:4: maintenance "weekly": every "sunday 02:00": day "sunday" must be one of sun, mon, tue, wed, thu, fri, sat; write "sun 02:00" (weekly, mon..sun) or "02:00" (daily)`,
		`testdata/invalid-maintenance.yaml:6: maintenance "weekly": timezone "Europe/Berln" is not a known IANA time zone such as Europe/Berlin`,
		`testdata/invalid-maintenance.yaml:7: duplicate maintenance name "weekly" (first at line 2)`,
		`testdata/invalid-maintenance.yaml:8: maintenance "weekly" match: event_ids[0] "NETWORK-[" is not a valid glob: syntax error in pattern`,
		`testdata/invalid-maintenance.yaml:9: maintenance "weekly": every "25:00": time "25:00" must be HH:MM, 00:00 to 23:59; write "sun 02:00" (weekly, mon..sun) or "02:00" (daily)`,
		`testdata/invalid-maintenance.yaml:10: maintenance "weekly": duration must be positive`,
		`testdata/invalid-maintenance.yaml:13: maintenance "no-duration": every needs duration, how long each window lasts`,
		`testdata/invalid-maintenance.yaml:17: maintenance "too-long": duration 24h0m0s must be shorter than a day, the time from one window to the next; use start and end for a longer one`,
		`testdata/invalid-maintenance.yaml:20: maintenance "both": every and start/end exclude each other: every repeats the window, start and end give a single one`,
		`testdata/invalid-maintenance.yaml:24: maintenance "neither": set every (with duration) for a recurring window, or start and end for a single one`,
		`testdata/invalid-maintenance.yaml:29: maintenance "backwards": end 2026-12-12T22:00:00+01:00 must be after start 2026-12-13T02:00:00+01:00`,
		`testdata/invalid-maintenance.yaml:30: maintenance "backwards": duration goes with every; a single window ends at end`,
		`testdata/invalid-maintenance.yaml:33: maintenance "bad-times": start "2026-12-12 22:00" must be an RFC 3339 time such as 2026-12-12T22:00:00+01:00`,
		`testdata/invalid-maintenance.yaml:34: maintenance "bad-times": end "tomorrow" must be an RFC 3339 time such as 2026-12-12T22:00:00+01:00`,
		`testdata/invalid-maintenance.yaml:37: maintenance "half": start needs end`,
		`testdata/invalid-maintenance.yaml:38: maintenance[9]: name is required`,
		`testdata/invalid-maintenance.yaml:38: maintenance[9]: match is empty, which would mute every alert; name devices, sites, roles, labels or event_ids (devices: ["*"] means every device)`,
		`testdata/invalid-maintenance.yaml:42: unknown key "device" in maintenance "unknown-key" match (known: devices, event_ids, labels, roles, sites)`,
	},
	"invalid-not-a-mapping.yaml": {
		`testdata/invalid-not-a-mapping.yaml:1: the config must be a mapping of settings (state_dir, http, devices, …), not a list`,
	},
	"invalid-snmp.yaml": {
		`testdata/invalid-snmp.yaml:2: snmp: poll_interval must be positive`,
		`testdata/invalid-snmp.yaml:3: snmp: timeout must be positive`,
		`testdata/invalid-snmp.yaml:4: snmp: retries -1 must not be negative`,
		`testdata/invalid-snmp.yaml:6: snmp profile "no-version": version is required: 1, 2c or 3`,
		`testdata/invalid-snmp.yaml:7: snmp profile "v2": version "2" must be 1, 2c or 3`,
		`testdata/invalid-snmp.yaml:8: snmp profile "no-community": port 70000 must be 1..65535`,
		`testdata/invalid-snmp.yaml:8: snmp profile "no-community": version 2c needs community or community_file`,
		`testdata/invalid-snmp.yaml:9: snmp profile "v1-with-user": user is for version 3 only`,
		`testdata/invalid-snmp.yaml:10: snmp profile "v3-bare": version 3 needs user`,
		`testdata/invalid-snmp.yaml:12: snmp profile "v3-bare": community is for versions 1 and 2c only; version 3 uses user, auth and priv`,
		`testdata/invalid-snmp.yaml:13: snmp profile "v3-bare": priv needs auth (SNMPv3 has no privacy without authentication)`,
		`testdata/invalid-snmp.yaml:17: snmp profile "v3-bad": auth protocol "SHA1" must be one of MD5, SHA, SHA224, SHA256, SHA384, SHA512`,
		`testdata/invalid-snmp.yaml:17: snmp profile "v3-bad": auth passphrase is shorter than 8 characters (RFC 3414 minimum)`,
		`testdata/invalid-snmp.yaml:18: snmp profile "v3-bad": priv protocol "3DES" must be one of DES, AES, AES192, AES256, AES192C, AES256C`,
		`testdata/invalid-snmp.yaml:18: snmp profile "v3-bad": priv needs passphrase or passphrase_file`,
		`testdata/invalid-snmp.yaml:22: snmp profile "v3-both" auth: passphrase_file: set either the value or the _file key, not both`,
	},
	"invalid-subscriptions.yaml": {
		`testdata/invalid-subscriptions.yaml:6: subscription "all": unknown destination "nowhere"`,
		`testdata/invalid-subscriptions.yaml:7: subscriptions[1]: name is required`,
		`testdata/invalid-subscriptions.yaml:8: duplicate subscription name "all" (first at line 5)`,
		`testdata/invalid-subscriptions.yaml:9: subscription "all": needs at least one destination`,
		`testdata/invalid-subscriptions.yaml:13: subscription "filtered" filter: severity 0 must be 1..5`,
		`testdata/invalid-subscriptions.yaml:13: subscription "filtered" filter: severity 6 must be 1..5`,
		`testdata/invalid-subscriptions.yaml:14: subscription "filtered" filter: category "Critical" must be one of ALERT, ERROR, WARN, INFO`,
		`testdata/invalid-subscriptions.yaml:15: subscription "filtered" filter: event_ids[0] "NETWORK-[" is not a valid glob: syntax error in pattern`,
		`testdata/invalid-subscriptions.yaml:16: subscription "filtered" filter: devices[0] "core-\\" is not a valid glob: syntax error in pattern`,
	},
	"invalid-syntax.yaml": {
		`testdata/invalid-syntax.yaml:3: invalid YAML: found unexpected end of stream`,
	},
	"invalid-traps-engine.yaml": {
		`testdata/invalid-traps-engine.yaml:1: traps: set communities or users (or both): with neither, every trap is dropped`,
		`testdata/invalid-traps-engine.yaml:2: traps: listen "127.0.0.1:99999": port "99999" must be a number 0..65535`,
		`testdata/invalid-traps-engine.yaml:3: traps: engine_id is 4 bytes; an SNMP engine ID is 5 to 32 bytes`,
	},
	"invalid-traps.yaml": {
		`testdata/invalid-traps.yaml:5: traps: listen "0.0.0.0" must be host:port, such as 127.0.0.1:9720 or [::1]:9720`,
		`testdata/invalid-traps.yaml:6: traps: communities[0] is empty`,
		`testdata/invalid-traps.yaml:7: traps: users[0] "lab" is an SNMP version 2c profile; users must name version 3 profiles`,
		`testdata/invalid-traps.yaml:7: traps: users[1] "missing" is not a profile under snmp.profiles`,
		`testdata/invalid-traps.yaml:8: traps: engine_id "0xnothex" must be hexadecimal, optionally with a 0x prefix`,
		`testdata/invalid-traps.yaml:9: traps: unknown_sources "ignore" must be accept or drop`,
		`testdata/invalid-traps.yaml:10: traps: rate_limit_per_source -5 must not be negative (0 means no limit)`,
		`testdata/invalid-traps.yaml:11: traps: max_unknown_sources 0 must be at least 1 (to refuse every unknown sender, set unknown_sources: drop)`,
		`testdata/invalid-traps.yaml:12: traps: unknown_expire must be a positive duration such as 24h`,
		`testdata/invalid-traps.yaml:13: traps: relays[2] "relay.example.net" is not an IP address or prefix such as 10.0.0.5 or 10.1.0.0/16`,
		`testdata/invalid-traps.yaml:13: traps: relays[3] "10.0.0.0/33" is not an IP address or prefix such as 10.0.0.5 or 10.1.0.0/16`,
	},
	"invalid-two-documents.yaml": {
		`testdata/invalid-two-documents.yaml:2: a second YAML document (after ---): the config must be one document`,
	},
	"invalid-types.yaml": {
		`testdata/invalid-types.yaml:1: state_dir must be a string, not a list`,
		`testdata/invalid-types.yaml:2: http must be a mapping, not a string`,
		`testdata/invalid-types.yaml:4: icmp: interval: invalid duration: want a Go duration such as 500ms, 10s or 5m`,
		`testdata/invalid-types.yaml:5: icmp: count must be an integer, not a string`,
		`testdata/invalid-types.yaml:6: icmp: privileged must be auto, true or false, not a list`,
		`testdata/invalid-types.yaml:9: snmp: profiles must be a mapping, not a list`,
		`testdata/invalid-types.yaml:11: devices must be a list, not a mapping`,
		`testdata/invalid-types.yaml:15: destination "hook": timeout: invalid duration: want a Go duration such as 500ms, 10s or 5m`,
		`testdata/invalid-types.yaml:16: destination "hook": rate_limit must be a number, not a string`,
		`testdata/invalid-types.yaml:17: destinations[1] must be a mapping, not a string`,
		`testdata/invalid-types.yaml:20: subscription "all": destinations must be a list, not a string`,
		`testdata/invalid-types.yaml:21: subscription "all": send_resolved must be true or false, not a string`,
		`testdata/invalid-types.yaml:23: subscription "all" filter: severities[1] must be an integer, not a string`,
	},
	"invalid-unknown-keys.yaml": {
		`testdata/invalid-unknown-keys.yaml:2: unknown key "statedir" (known: cluster, destinations, devices, edge, external_url, history, http, hub, icmp, maintenance, noise, rules, snmp, state_dir, store, subscriptions, traps)`,
		`testdata/invalid-unknown-keys.yaml:6: unknown key "intervall" in icmp (known: count, interval, privileged, timeout)`,
		`testdata/invalid-unknown-keys.yaml:12: unknown key "salt" in snmp profile "core-v3" auth (known: passphrase, passphrase_file, protocol)`,
		`testdata/invalid-unknown-keys.yaml:16: unknown key "adress" in device "sw1" (known: address, icmp, labels, name, parents, role, site, snmp)`,
		`testdata/invalid-unknown-keys.yaml:17: unknown key "cnt" in device "sw1" icmp (known: count, disabled, interval, timeout)`,
		`testdata/invalid-unknown-keys.yaml:22: unknown key "inital" in destination "hook" retry (known: initial, max, max_age, probe_interval)`,
		`testdata/invalid-unknown-keys.yaml:23: unknown key "ca" in destination "hook" tls (known: ca_file, insecure_skip_verify)`,
		`testdata/invalid-unknown-keys.yaml:27: unknown key "severity" in subscription "all" filter (known: categories, devices, event_ids, labels, roles, severities, sites)`,
	},
	"invalid-noise.yaml": {
		`testdata/invalid-noise.yaml:3: noise: flap: changes 1 must be at least 2`,
		`testdata/invalid-noise.yaml:7: noise: site_outage: min_devices 0 must be at least 1`,
		`testdata/invalid-noise.yaml:8: noise: site_outage: ratio 1.5 must be above 0 and at most 1`,
		`testdata/invalid-noise.yaml:9: unknown key "windw" in noise site_outage (known: min_devices, ratio, window)`,
	},
	"invalid-noise-kinds.yaml": {
		`testdata/invalid-noise-kinds.yaml:3: noise: flap must be false, true (the defaults) or a mapping, not a string`,
		`testdata/invalid-noise-kinds.yaml:4: noise: site_outage must be false, true (the defaults) or a mapping, not a list`,
	},
}

func TestLoadInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := invalidConfigs[filepath.Base(f)]; !ok {
			t.Errorf("%s has no expected errors in invalidConfigs", f)
		}
	}
	for name, want := range invalidConfigs {
		t.Run(name, func(t *testing.T) {
			cfg, err := Load(filepath.Join("testdata", name))
			if err == nil {
				t.Fatalf("Load succeeded, want errors:\n%s", strings.Join(want, "\n"))
			}
			if cfg != nil {
				t.Error("Load returned a config along with errors")
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T, want config.Errors", err)
			}
			if got := err.Error(); got != strings.Join(want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
			}
		})
	}
}

func TestLoadFull(t *testing.T) {
	cfg, err := Load("testdata/valid-full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	d := func(s string) Duration {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return Duration(v)
	}
	defaultRetry := Retry{Initial: d("1s"), Max: d("5m"), MaxAge: d("24h"), ProbeInterval: d("5s")}
	want := &Config{
		File:        filepath.Join(dir, "valid-full.yaml"),
		BaseDir:     dir,
		StateDir:    filepath.Join(dir, "data"),
		ExternalURL: "https://nocbridge.example.com/",
		HTTP:        HTTP{Listen: "127.0.0.1:9720", Token: "test-api-token"},
		Rules:       []string{filepath.Join(filepath.Dir(dir), "rules", "*.yaml"), "/etc/nocbridge/rules/*.yaml"},
		Store:       Store{Sync: "2s"},
		ICMP:        ICMP{Interval: d("10s"), Timeout: d("1s"), Count: 3, Privileged: PrivilegedFalse},
		SNMP: SNMP{
			PollInterval: d("30s"), Timeout: d("3s"), Retries: 0,
			Profiles: map[string]SNMPProfile{
				"lab-v2c": {Version: "2c", Community: "public-test-community", Port: 161, Line: 22},
				"lab-v1":  {Version: "1", Community: "v1-test-community", Port: 1161, Line: 23},
				"core-v3": {
					Version: "3", User: "noc", Port: 161, Line: 24,
					Auth: &SNMPKey{Protocol: "SHA256", Passphrase: "auth-test-passphrase"},
					Priv: &SNMPKey{Protocol: "AES", Passphrase: "priv-test-passphrase"},
				},
			},
		},
		Traps: Traps{
			Listen:             "127.0.0.1:9162",
			Communities:        []Secret{"public", "trap-test-community"},
			Users:              []string{"core-v3"},
			EngineID:           "0x80001f8880c0ffee",
			UnknownSources:     "drop",
			RateLimitPerSource: 0,
			MaxUnknownSources:  1000,
			UnknownExpire:      Duration(24 * time.Hour),
		},
		Devices: []Device{
			{Name: "core-sw1", Address: "10.0.0.1", Site: "HQ", Role: "core", Labels: map[string]string{"vendor": "cisco"},
				SNMP: "core-v3", ICMP: DeviceICMP{Interval: d("5s")}, Line: 39},
			{Name: "access-sw7", Address: "access-sw7.example.com", Site: "HQ", Role: "access", SNMP: "lab-v2c",
				ICMP: DeviceICMP{Timeout: d("2s"), Count: 2}, Parents: []string{"core-sw1"}, Line: 46},
			{Name: "v6-router", Address: "2001:db8::1", ICMP: DeviceICMP{Disabled: true}, Parents: []string{"core-sw1", "access-sw7"}, Line: 53},
		},
		Destinations: []Destination{
			{Name: "noc-log", Type: "log", Timeout: d("10s"), Retry: defaultRetry, Line: 59},
			{Name: "itsm-hook", Type: "webhook", Timeout: d("5s"), Retry: Retry{Initial: d("2s"), Max: d("1m"), MaxAge: d("1h"), ProbeInterval: d("10s")},
				TLS: TLS{CAFile: "ca.pem", InsecureSkipVerify: true}, ProxyURL: "http://proxy.example.com:3128", RateLimit: 2.5, Line: 61},
			{Name: "noc-slack", Type: "slack", Timeout: d("10s"), Retry: Retry{Initial: d("1s"), Max: d("10m"), MaxAge: d("24h"), ProbeInterval: d("5s")}, Line: 74},
		},
		Subscriptions: []Subscription{
			{Name: "everything-to-log", Destinations: []string{"noc-log"}, SendResolved: &yes, Line: 80},
			{Name: "critical-to-itsm", Filter: Filter{
				Severities: []int{1, 2}, EventIDs: []string{"NETWORK-DEVICES-*"}, Categories: []string{"ALERT", "ERROR"},
				Selector: Selector{Sites: []string{"HQ"}, Roles: []string{"core"}, Devices: []string{"core-*"}, Labels: map[string]string{"vendor": "cisco"}},
			}, Destinations: []string{"itsm-hook", "noc-slack"}, SendResolved: &no, Line: 82},
		},
		Noise: Noise{ // the defaults
			Flap:       Flap{Changes: 5, Window: Duration(15 * time.Minute)},
			SiteOutage: SiteOutage{Window: Duration(time.Minute), MinDevices: 3, Ratio: 0.5},
		},
		History: History{Retention: d("168h")},
		Maintenance: []Maintenance{
			{Name: "sunday-patching", Match: Match{Selector: Selector{Sites: []string{"HQ"}, Roles: []string{"access"}}, EventIDs: []string{"NETWORK-*"}},
				Every: "sun 02:00", Duration: d("2h"), Timezone: "Europe/Berlin", Line: 95},
			{Name: "core-upgrade", Match: Match{Selector: Selector{Devices: []string{"core-sw1"}}},
				Start: "2026-12-12T22:00:00+01:00", End: "2026-12-13T02:00:00+01:00", Timezone: "Local", Line: 100},
		},
		Warnings: Warnings{{File: filepath.Join("testdata", "valid-full.yaml"), Line: 71,
			Msg: `destination "itsm-hook": tls.insecure_skip_verify is true: the receiver's certificate is not checked, so anyone on the path can read notifications and credentials; trust a private CA with tls.ca_file instead`}},
	}

	// The destinations' nodes hold their type-specific keys, for notify.
	var hook struct {
		URL       string            `yaml:"url"`
		Headers   map[string]string `yaml:"headers"`
		BasicAuth struct {
			Username     string `yaml:"username"`
			PasswordFile string `yaml:"password_file"`
		} `yaml:"basic_auth"`
	}
	if err := cfg.Destinations[1].Node.Decode(&hook); err != nil {
		t.Fatal(err)
	}
	if hook.URL != "https://itsm.example.com/hooks/dnac" || hook.Headers["X-Team"] != "noc" || hook.BasicAuth.PasswordFile != "/etc/nocbridge/secrets/itsm" {
		t.Errorf("webhook keys from Node: %+v", hook)
	}
	for i, dst := range cfg.Destinations {
		if dst.Node == nil || dst.Node.Kind != yaml.MappingNode || dst.Node.Line != dst.Line {
			t.Fatalf("destination %q: Node %+v, want its mapping at line %d", dst.Name, dst.Node, dst.Line)
		}
		cfg.Destinations[i].Node = nil
	}

	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load:\n%s\nwant:\n%s", dump(cfg), dump(want))
		got, exp := secretFields(cfg), secretFields(want)
		for name := range exp {
			if got[name] != exp[name] {
				t.Errorf("secret %s differs", name) // never print the values
			}
		}
	}
	if eff := cfg.EffectiveICMP(cfg.Devices[1]); eff.Interval != d("10s") || eff.Timeout != d("2s") || eff.Count != 2 {
		t.Errorf("EffectiveICMP(access-sw7) = %+v", eff)
	}
}

// dump shows a config for comparing in test output; secrets stay redacted.
func dump(c *Config) string {
	out, err := yaml.Marshal(c)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%s(file %s, base %s, lines %s)", out, c.File, c.BaseDir, lines(c))
}

// secretFields maps each secret's place to its value, for comparisons that
// report only the place.
func secretFields(c *Config) map[string]string {
	out := map[string]string{"http.token": c.HTTP.Token.Reveal()}
	for name, p := range c.SNMP.Profiles {
		out[name+".community"] = p.Community.Reveal()
		if p.Auth != nil {
			out[name+".auth"] = p.Auth.Passphrase.Reveal()
		}
		if p.Priv != nil {
			out[name+".priv"] = p.Priv.Passphrase.Reveal()
		}
	}
	for i, cm := range c.Traps.Communities {
		out[fmt.Sprintf("traps.communities[%d]", i)] = cm.Reveal()
	}
	return out
}

func lines(c *Config) string {
	var b strings.Builder
	for _, d := range c.Devices {
		fmt.Fprintf(&b, "device %s:%d ", d.Name, d.Line)
	}
	for _, d := range c.Destinations {
		fmt.Fprintf(&b, "destination %s:%d ", d.Name, d.Line)
	}
	for _, s := range c.Subscriptions {
		fmt.Fprintf(&b, "subscription %s:%d ", s.Name, s.Line)
	}
	for _, m := range c.Maintenance {
		fmt.Fprintf(&b, "maintenance %s:%d ", m.Name, m.Line)
	}
	for _, name := range sortedKeys(c.SNMP.Profiles) {
		fmt.Fprintf(&b, "profile %s:%d ", name, c.SNMP.Profiles[name].Line)
	}
	return b.String()
}

// writeConfig writes a config file into a new temporary folder.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nocbridge.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadDefaults(t *testing.T) {
	path := writeConfig(t, `
traps:
  communities: [public]
snmp:
  profiles:
    lab: {version: 2c, community: public}
destinations:
  - {name: d1, type: log}
  - {name: d2, type: log, retry: {max: 1m}}
subscriptions:
  - {name: s1, destinations: [d1]}
`)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"state_dir", cfg.StateDir, "/var/lib/nocbridge"},
		{"http.listen", cfg.HTTP.Listen, "127.0.0.1:9720"},
		{"external_url", cfg.ExternalURL, "http://127.0.0.1:9720"},
		{"store.sync", cfg.Store.Sync, "always"},
		{"rules", len(cfg.Rules), 0},
		{"icmp", cfg.ICMP, ICMP{Interval: Duration(10 * time.Second), Timeout: Duration(time.Second), Count: 1, Privileged: PrivilegedAuto}},
		{"snmp.poll_interval", cfg.SNMP.PollInterval, Duration(time.Minute)},
		{"snmp.timeout", cfg.SNMP.Timeout, Duration(2 * time.Second)},
		{"snmp.retries", cfg.SNMP.Retries, 1},
		{"snmp profile port", cfg.SNMP.Profiles["lab"].Port, 161},
		{"traps.listen", cfg.Traps.Listen, "0.0.0.0:162"},
		{"traps.unknown_sources", cfg.Traps.UnknownSources, "accept"},
		{"traps.rate_limit_per_source", cfg.Traps.RateLimitPerSource, 1000},
		{"traps.max_unknown_sources", cfg.Traps.MaxUnknownSources, 1000},
		{"traps.unknown_expire", cfg.Traps.UnknownExpire, Duration(24 * time.Hour)},
		{"destination timeout", cfg.Destinations[0].Timeout, Duration(10 * time.Second)},
		{"destination retry", cfg.Destinations[0].Retry, Retry{Initial: Duration(time.Second), Max: Duration(5 * time.Minute), MaxAge: Duration(24 * time.Hour), ProbeInterval: Duration(5 * time.Second)}},
		{"retry fields default separately", cfg.Destinations[1].Retry, Retry{Initial: Duration(time.Second), Max: Duration(time.Minute), MaxAge: Duration(24 * time.Hour), ProbeInterval: Duration(5 * time.Second)}},
		{"send_resolved", *cfg.Subscriptions[0].SendResolved, true},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	// No traps section: no receiver, so no defaults that would bind port 162.
	cfg, err = Load(writeConfig(t, "state_dir: ./s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Traps.Listen != "" || cfg.Traps.RateLimitPerSource != 0 {
		t.Errorf("traps without a traps section: %+v, want the zero value (receiver off)", cfg.Traps)
	}
}

func TestTrapRelays(t *testing.T) {
	cfg, err := Load(writeConfig(t, "traps: {communities: [public], relays: [10.0.0.5, 10.1.2.0/16, \"2001:db8::1\"]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range cfg.Traps.RelayPrefixes() {
		got = append(got, p.String())
	}
	if want := []string{"10.0.0.5/32", "10.1.0.0/16", "2001:db8::1/128"}; !reflect.DeepEqual(got, want) {
		t.Errorf("relays = %v, want %v", got, want)
	}
}

// An explicit zero is kept where it means something, instead of being
// replaced by the default.
func TestLoadExplicitZeroes(t *testing.T) {
	cfg, err := Load(writeConfig(t, `
snmp: {retries: 0}
traps: {communities: [public], rate_limit_per_source: 0}
destinations:
  - {name: d1, type: log, timeout: 0s, rate_limit: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SNMP.Retries != 0 || cfg.Traps.RateLimitPerSource != 0 || cfg.Destinations[0].Timeout != 0 {
		t.Errorf("retries %d, rate_limit_per_source %d, timeout %s: want all 0", cfg.SNMP.Retries, cfg.Traps.RateLimitPerSource, cfg.Destinations[0].Timeout)
	}
}

func TestExternalURLDefault(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	tests := []struct{ listen, want string }{
		{"127.0.0.1:9720", "http://127.0.0.1:9720"},
		{"[::1]:8080", "http://[::1]:8080"},
		{"nocbridge.example.com:80", "http://nocbridge.example.com:80"},
		{"0.0.0.0:9720", "http://" + host + ":9720"},
		{"[::]:9720", "http://" + host + ":9720"},
		{":9720", "http://" + host + ":9720"},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			cfg, err := Load(writeConfig(t, fmt.Sprintf("http: {listen: %q, token: t0ken-for-a-public-listener}\n", tt.listen)))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ExternalURL != tt.want {
				t.Errorf("external_url = %q, want %q", cfg.ExternalURL, tt.want)
			}
		})
	}
}

func TestLoadRelativePaths(t *testing.T) {
	root := t.TempDir()
	sub := filepath.Join(root, "etc")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	body := "state_dir: ../state\nrules: [rules/*.yaml, /abs/rules/*.yaml, \"../shared/[ab]*.yaml\"]\nhttp:\n  listen: 127.0.0.1:9720\n  intervall: 1\n"
	if err := os.WriteFile(filepath.Join(sub, "nocbridge.yaml"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)

	// Errors name the file as given, relative.
	_, err := Load("etc/nocbridge.yaml")
	if err == nil || !strings.HasPrefix(err.Error(), "etc/nocbridge.yaml:5: ") {
		t.Fatalf("error %v, want it at etc/nocbridge.yaml:5", err)
	}

	if err := os.WriteFile(filepath.Join(sub, "nocbridge.yaml"), []byte(strings.Replace(body, "  intervall: 1\n", "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load("etc/nocbridge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs("etc/nocbridge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != abs || cfg.BaseDir != filepath.Dir(abs) {
		t.Errorf("File %q, BaseDir %q; want %q and its folder", cfg.File, cfg.BaseDir, abs)
	}
	root = filepath.Dir(filepath.Dir(abs))
	if want := filepath.Join(root, "state"); cfg.StateDir != want {
		t.Errorf("state_dir = %q, want %q", cfg.StateDir, want)
	}
	wantRules := []string{filepath.Join(root, "etc", "rules", "*.yaml"), "/abs/rules/*.yaml", filepath.Join(root, "shared", "[ab]*.yaml")}
	if !slices.Equal(cfg.Rules, wantRules) {
		t.Errorf("rules = %q, want %q (absolute, not expanded)", cfg.Rules, wantRules)
	}
}

func TestLoadSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("token", "api-token-from-file\n")
	write("community", "  community-from-file\n")
	write("auth", "auth-passphrase-from-file")
	write("empty", "\n")
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "priv"), []byte("priv-passphrase-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "nocbridge.yaml")
	good := `http:
  token_file: token
snmp:
  profiles:
    lab: {version: 2c, community_file: ` + filepath.Join(dir, "community") + `}
    core:
      version: 3
      user: noc
      auth: {protocol: SHA, passphrase_file: auth}
      priv: {protocol: AES, passphrase_file: secrets/priv}
`
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		got  Secret
		want string
	}{
		{"http.token_file (relative)", cfg.HTTP.Token, "api-token-from-file"},
		{"community_file (absolute)", cfg.SNMP.Profiles["lab"].Community, "community-from-file"},
		{"auth passphrase_file", cfg.SNMP.Profiles["core"].Auth.Passphrase, "auth-passphrase-from-file"},
		{"priv passphrase_file (in a subfolder)", cfg.SNMP.Profiles["core"].Priv.Passphrase, "priv-passphrase-from-file"},
	} {
		if c.got.Reveal() != c.want {
			t.Errorf("%s: got %d characters, want %q", c.name, len(c.got.Reveal()), c.want)
		}
	}

	bad := `http:
  token: inline-token-value
  token_file: token
snmp:
  profiles:
    lab: {version: 2c, community_file: missing}
    core:
      version: 3
      user: noc
      auth: {protocol: SHA, passphrase_file: empty}
`
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	want := []string{
		path + `:3: http: token_file: set either the value or the _file key, not both`,
		path + `:6: snmp profile "lab": community_file: reading secret file: open ` + filepath.Join(dir, "missing") + `: no such file or directory`,
		path + `:10: snmp profile "core" auth: passphrase_file: secret file ` + filepath.Join(dir, "empty") + ` is empty`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("errors:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

// No secret value may reach an error message, wherever the user puts it.
func TestErrorsNeverHoldSecrets(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secretFile, []byte("file-secret-Q7wz"), 0o600); err != nil {
		t.Fatal(err)
	}
	secrets := []string{"inline-secret-X1", "community-secret-X2", "short-X3", "trap-secret-X4", "passphrase-secret-X5", "file-secret-Q7wz", "proxy-pass-X6", "list-secret-X7"}
	configs := []string{
		// the right places, with other mistakes around them
		`http: {token: inline-secret-X1, token_file: ` + secretFile + `, listen: nowhere}
snmp:
  profiles:
    v2: {version: 2c, community: community-secret-X2, user: x, port: 0}
    v3: {version: 3, user: u, community: community-secret-X2, auth: {protocol: SHA, passphrase: short-X3}, priv: {protocol: BAD, passphrase: passphrase-secret-X5}}
traps: {communities: [trap-secret-X4, ""], users: [v2]}
destinations:
  - {name: d, type: log, proxy_url: "ftp://user:proxy-pass-X6@example.com", rate_limit: -1}
  - {name: e, type: log, proxy_url: "http://user:proxy-pass-X6@[::1"}
`,
		// the wrong kinds: a secret where a list, mapping or number belongs
		`traps: {communities: trap-secret-X4}
snmp:
  profiles:
    v3: {version: 3, user: u, auth: passphrase-secret-X5, priv: [list-secret-X7]}
    v2: community-secret-X2
http: inline-secret-X1
icmp: {count: short-X3, timeout: [file-secret-Q7wz]}
`,
		// a file that is not YAML at all
		"http:\n  token: \"inline-secret-X1\n  listen: [\n",
	}
	for i, body := range configs {
		_, err := Load(writeConfig(t, body))
		if err == nil {
			t.Fatalf("config %d loaded; want errors", i)
		}
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("config %d: a secret appears in the errors:\n%s", i, strings.ReplaceAll(err.Error(), s, "<SECRET>"))
			}
		}
	}

	// A loaded config prints without its secrets too.
	cfg, err := Load("testdata/valid-full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fmt.Sprintf("%v", *cfg), fmt.Sprintf("%+v", *cfg), fmt.Sprintf("%#v", *cfg)} {
		for _, s := range []string{"test-api-token", "public-test-community", "auth-test-passphrase", "priv-test-passphrase", "trap-test-community"} {
			if strings.Contains(out, s) {
				t.Errorf("formatted config shows a secret")
			}
		}
	}
}

func TestPrivileged(t *testing.T) {
	tests := []struct {
		value string
		want  Privileged
		err   string
	}{
		{"auto", PrivilegedAuto, ""},
		{"true", PrivilegedTrue, ""},
		{"false", PrivilegedFalse, ""},
		{"True", PrivilegedTrue, ""},
		{"FALSE", PrivilegedFalse, ""},
		{`"true"`, PrivilegedTrue, ""},
		{`"false"`, PrivilegedFalse, ""},
		{"yes", "", `icmp: privileged "yes" must be auto, true or false`},
		{`"Auto"`, "", `icmp: privileged "Auto" must be auto, true or false`},
		{"1", "", `icmp: privileged "1" must be auto, true or false`},
		{"{x: 1}", "", `icmp: privileged must be auto, true or false, not a mapping`},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			path := writeConfig(t, "icmp:\n  privileged: "+tt.value+"\n")
			cfg, err := Load(path)
			if tt.err != "" {
				if want := path + ":2: " + tt.err; err == nil || err.Error() != want {
					t.Fatalf("error %v, want %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ICMP.Privileged != tt.want {
				t.Errorf("privileged = %q, want %q", cfg.ICMP.Privileged, tt.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.yaml")
	_, err := Load(path)
	if want := path + ": cannot read config: no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

// The dev default must load as shipped, with the values the brief fixes.
func TestShippedDevConfig(t *testing.T) {
	cfg, err := Load("../../configs/nocbridge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case cfg.StateDir != filepath.Join(repo, "data"):
		t.Errorf("state_dir = %s, want the repository's data folder", cfg.StateDir)
	case !slices.Equal(cfg.Rules, []string{filepath.Join(repo, "rules", "*.yaml")}):
		t.Errorf("rules = %q", cfg.Rules)
	case cfg.HTTP.Listen != "127.0.0.1:9720" || cfg.ExternalURL != "http://127.0.0.1:9720":
		t.Errorf("http.listen %s, external_url %s", cfg.HTTP.Listen, cfg.ExternalURL)
	case cfg.ICMP.Privileged != PrivilegedAuto:
		t.Errorf("icmp.privileged = %s, want auto", cfg.ICMP.Privileged)
	case len(cfg.Devices) != 1 || cfg.Devices[0].Name != "localhost" || cfg.Devices[0].Address != "127.0.0.1" || cfg.Devices[0].Site != "Lab" || cfg.Devices[0].Role != "core":
		t.Errorf("devices = %+v", cfg.Devices)
	case len(cfg.Destinations) != 1 || cfg.Destinations[0].Name != "noc-log" || cfg.Destinations[0].Type != "log":
		t.Errorf("destinations = %+v", cfg.Destinations)
	case len(cfg.Subscriptions) != 1 || cfg.Subscriptions[0].Name != "everything-to-log" || !slices.Equal(cfg.Subscriptions[0].Destinations, []string{"noc-log"}):
		t.Errorf("subscriptions = %+v", cfg.Subscriptions)
	case cfg.Traps.Listen != "127.0.0.1:9162" || len(cfg.Traps.Communities) != 1 || cfg.Traps.Communities[0].Reveal() != "public":
		// An unprivileged loopback port, so `go run` works without CAP_NET_BIND_SERVICE.
		t.Errorf("traps %+v: want 127.0.0.1:9162 accepting community public", cfg.Traps)
	}
	if rules, _ := filepath.Glob(cfg.Rules[0]); len(rules) == 0 {
		t.Errorf("rules glob %s matches no file", cfg.Rules[0])
	}
}

// The production example uses every key; its secret and certificate files
// exist only on a real install, so missing files must be its only errors.
func TestProductionExample(t *testing.T) {
	const path = "../../configs/production.example.yaml"
	_, err := Load(path)
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Load: %v; want config.Errors for the missing secret files", err)
	}
	wantFiles := []string{
		"/etc/nocbridge/secrets/http-token",
		"/etc/nocbridge/secrets/snmp-community",
		"/etc/nocbridge/secrets/snmp-auth",
		"/etc/nocbridge/secrets/snmp-priv",
	}
	var gotFiles []string
	for _, e := range es {
		if e.Msg == "http: tls: cannot load the certificate and key: open /etc/nocbridge/tls/cert.pem: no such file or directory" {
			continue
		}
		_, file, ok := strings.Cut(e.Msg, "reading secret file: open ")
		file, missing := strings.CutSuffix(file, ": no such file or directory")
		if !ok || !missing || e.Line == 0 {
			t.Errorf("unexpected error: %v", e)
			continue
		}
		gotFiles = append(gotFiles, file)
	}
	if !slices.Equal(gotFiles, wantFiles) {
		t.Errorf("missing secret files reported: %q, want %q", gotFiles, wantFiles)
	}

	// Every SPEC section 3 key appears in the example.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	collectKeys(doc.Content[0], "", used)
	for _, k := range []string{
		"state_dir", "external_url", "http.listen", "http.token_file", "http.tls.cert_file", "http.tls.key_file", "http.metrics_auth",
		"rules", "store.sync", "destinations.follow_redirects",
		"icmp.interval", "icmp.timeout", "icmp.count", "icmp.privileged",
		"snmp.poll_interval", "snmp.timeout", "snmp.retries", "snmp.profiles.*.version", "snmp.profiles.*.community_file",
		"snmp.profiles.*.port", "snmp.profiles.*.user", "snmp.profiles.*.auth.protocol", "snmp.profiles.*.auth.passphrase_file",
		"snmp.profiles.*.priv.protocol", "snmp.profiles.*.priv.passphrase_file",
		"traps.listen", "traps.communities", "traps.users", "traps.engine_id", "traps.unknown_sources", "traps.rate_limit_per_source",
		"traps.max_unknown_sources", "traps.unknown_expire", "traps.relays",
		"devices.name", "devices.address", "devices.site", "devices.role", "devices.labels", "devices.snmp", "devices.icmp.interval",
		"devices.icmp.disabled", "devices.parents",
		"destinations.name", "destinations.type", "destinations.timeout", "destinations.retry.initial", "destinations.retry.max",
		"destinations.retry.max_age", "destinations.retry.probe_interval", "destinations.tls.ca_file", "destinations.tls.insecure_skip_verify", "destinations.proxy_url",
		"destinations.rate_limit", "destinations.url", "destinations.method", "destinations.headers", "destinations.basic_auth.username",
		"destinations.basic_auth.password_file", "destinations.secret_file", "destinations.format", "destinations.url_file",
		"subscriptions.name", "subscriptions.destinations", "subscriptions.send_resolved", "subscriptions.filter.severities",
		"subscriptions.filter.event_ids", "subscriptions.filter.categories", "subscriptions.filter.sites", "subscriptions.filter.roles",
		"subscriptions.filter.devices", "subscriptions.filter.labels",
	} {
		if !used[k] {
			t.Errorf("production.example.yaml does not show %s", k)
		}
	}
}

// collectKeys records dotted key paths; list entries add nothing to the
// path and snmp profile names become "*".
func collectKeys(n *yaml.Node, prefix string, used map[string]bool) {
	switch n.Kind {
	case yaml.SequenceNode:
		for _, c := range n.Content {
			collectKeys(c, prefix, used)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if prefix == "snmp.profiles." {
				k = "*"
			}
			used[prefix+k] = true
			if !strings.HasSuffix(prefix+k, "labels") && !strings.HasSuffix(prefix+k, "headers") {
				collectKeys(n.Content[i+1], prefix+k+".", used)
			}
		}
	}
}

// Destination decodes the common keys only: the type's own keys (checked
// later by notify) are no error here, but retry and tls stay strict.
func TestDestinationUnmarshal(t *testing.T) {
	src := `- name: hook
  type: webhook
  url: https://example.com/
  anything_the_type_knows: {nested: true}
  retry: {initial: 2s}
`
	var ds []Destination
	if err := yaml.Unmarshal([]byte(src), &ds); err != nil {
		t.Fatal(err)
	}
	d := ds[0]
	if d.Name != "hook" || d.Type != "webhook" || d.Retry.Initial != Duration(2*time.Second) || d.Line != 1 {
		t.Errorf("decoded %+v", d)
	}
	if v := lookup(d.Node, "url"); v == nil || v.Value != "https://example.com/" {
		t.Errorf("Node lost the type's keys: url = %v", v)
	}

	var bad []Destination
	err := yaml.Unmarshal([]byte("- [not, a, mapping]\n"), &bad)
	if err == nil || !strings.Contains(err.Error(), "line 1: a destination must be a mapping") {
		t.Errorf("error %v, want a mapping error at line 1", err)
	}
}

// Merge keys and anchors are YAML: settings shared that way still count as
// set (for defaults) and are still checked for unknown keys.
func TestLoadAnchorsAndMergeKeys(t *testing.T) {
	path := writeConfig(t, `
x-retry: &retry {initial: 5s, max: 2m}
destinations:
  - name: a
    type: log
    retry: *retry
  - <<: {type: log, timeout: 0s}
    name: b
devices:
  - &sw {name: sw1, address: 10.0.0.1, icmp: {count: 2}}
  - <<: *sw
    name: sw2
`)
	_, err := Load(path)
	if want := path + `:2: unknown key "x-retry" (known: cluster, destinations, devices, edge, external_url, history, http, hub, icmp, maintenance, noise, rules, snmp, state_dir, store, subscriptions, traps)`; err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
	b, _ := os.ReadFile(path)
	body := strings.Replace(string(b), "x-retry: &retry {initial: 5s, max: 2m}", "", 1)
	body = strings.Replace(body, "retry: *retry", "retry: &retry {initial: 5s, max: 2m}", 1)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Destinations[0].Retry; r.Initial != Duration(5*time.Second) || r.Max != Duration(2*time.Minute) {
		t.Errorf("retry = %+v", r)
	}
	if b := cfg.Destinations[1]; b.Type != "log" || b.Timeout != 0 {
		t.Errorf("merged destination = %+v, want type log and the explicit timeout 0", b)
	}
	if sw2 := cfg.Devices[1]; sw2.Name != "sw2" || sw2.Address != "10.0.0.1" || sw2.ICMP.Count != 2 {
		t.Errorf("merged device = %+v", sw2)
	}
}

// A mistake inside an anchor is reported once, where it is written, however
// often aliases and merge keys reuse it.
func TestLoadAnchorErrorsReportedOnce(t *testing.T) {
	path := writeConfig(t, `destinations:
  - name: a
    type: log
    retry: &retry {initial: 5s, maxx: 2m}
  - name: b
    type: log
    retry: *retry
devices:
  - &sw {name: sw1, address: 10.0.0.1, rol: core}
  - <<: *sw
    name: sw2
`)
	_, err := Load(path)
	want := []string{
		path + `:4: unknown key "maxx" in destination "a" retry (known: initial, max, max_age, probe_interval)`,
		path + `:9: unknown key "rol" in device "sw1" (known: address, icmp, labels, name, parents, role, site, snmp)`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("errors:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

// A bad http.listen is reported once, not again through the external_url
// default built from it.
func TestLoadBadListenNoDefaultURLError(t *testing.T) {
	path := writeConfig(t, "http:\n  listen: \"bad host!:9720\"\n")
	_, err := Load(path)
	if want := path + `:2: http: listen "bad host!:9720": host "bad host!" is not an IP address or a DNS name`; err == nil || err.Error() != want {
		t.Errorf("errors:\n%v\nwant:\n%s", err, want)
	}
}

func TestNoiseSwitches(t *testing.T) {
	for _, tc := range []struct {
		yaml       string
		flapOff    bool
		changes    int
		siteOff    bool
		minDevices int
	}{
		{"noise: {flap: false, site_outage: false}", true, 5, true, 3},
		{"noise: {flap: true, site_outage: true}", false, 5, false, 3},
		{"noise: {flap: {changes: 3}, site_outage: {min_devices: 5}}", false, 3, false, 5},
		{"", false, 5, false, 3},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "nocbridge.yaml")
		if err := os.WriteFile(path, []byte("state_dir: ./data\n"+tc.yaml+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path)
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		n := cfg.Noise
		if n.Flap.Off != tc.flapOff || n.Flap.Changes != tc.changes || n.Flap.Window.D() != 15*time.Minute ||
			n.SiteOutage.Off != tc.siteOff || n.SiteOutage.MinDevices != tc.minDevices || n.SiteOutage.Ratio != 0.5 {
			t.Errorf("%q: noise %+v", tc.yaml, n)
		}
	}
}

// history.retention: 30 days unless set; a Go duration above zero.
func TestHistoryRetention(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want time.Duration
		err  string // after "FILE:"
	}{
		{"", 30 * 24 * time.Hour, ""},
		{"history: {}", 30 * 24 * time.Hour, ""},
		{"history:\n  retention: 2h", 2 * time.Hour, ""},
		{"history:\n  retention: 0s", 0, "3: history: retention must be a positive duration such as 720h (30 days)"},
		{"history:\n  retention: -1h", 0, "3: history: retention must be a positive duration such as 720h (30 days)"},
		{"history:\n  retention: 30d", 0, "3: history: retention: invalid duration: want a Go duration such as 500ms, 10s or 5m"},
		{"history:\n  keep: 1h", 0, `3: unknown key "keep" in history (known: retention)`},
	} {
		path := writeConfig(t, "state_dir: ./data\n"+tc.yaml+"\n")
		cfg, err := Load(path)
		switch {
		case tc.err != "":
			if err == nil || err.Error() != path+":"+tc.err {
				t.Errorf("%q: error %v; want %s:%s", tc.yaml, err, path, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.yaml, err)
		case cfg.History.Retention.D() != tc.want:
			t.Errorf("%q: retention %v, want %v", tc.yaml, cfg.History.Retention, tc.want)
		}
	}
}
