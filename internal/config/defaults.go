package config

import (
	"net"
	"net/netip"
	"os"
	"time"
)

// Default values, applied by applyDefaults and nowhere else.
const (
	defaultStateDir     = "/var/lib/nocbridge"
	defaultHTTPListen   = "127.0.0.1:9720"
	defaultStoreSync    = "always"
	defaultICMPInterval = 10 * time.Second
	defaultICMPTimeout  = time.Second
	defaultICMPCount    = 1

	defaultSNMPPollInterval = 60 * time.Second
	defaultSNMPTimeout      = 2 * time.Second
	defaultSNMPRetries      = 1
	defaultSNMPPort         = 161

	defaultTrapListen             = "0.0.0.0:162"
	defaultTrapUnknownSources     = "accept"
	defaultTrapRateLimitPerSource = 1000
	defaultTrapMaxUnknownSources  = 1000
	defaultTrapUnknownExpire      = 24 * time.Hour

	defaultFlapChanges    = 5
	defaultFlapWindow     = 15 * time.Minute
	defaultSiteWindow     = time.Minute
	defaultSiteMinDevices = 3
	defaultSiteRatio      = 0.5

	defaultDestinationTimeout = 10 * time.Second
	defaultRetryInitial       = time.Second
	defaultRetryMax           = 5 * time.Minute
	defaultRetryMaxAge        = 24 * time.Hour
	defaultRetryProbeInterval = 5 * time.Second

	defaultMaintenanceTimezone = "Local" // time.LoadLocation's name for the machine's zone

	defaultHistoryRetention = 30 * 24 * time.Hour

	defaultClusterDownWhen = DownWhenAll

	defaultEdgeBuffer          = 1 << 30 // 1GiB
	defaultHubListen           = "0.0.0.0:7422"
	defaultHubUnreachableAfter = 30 * time.Second
)

// applyDefaults fills in every setting the file leaves out:
//
//	state_dir                    /var/lib/nocbridge
//	http.listen                  127.0.0.1:9720
//	external_url                 http(s)://<http.listen> (an unspecified host, as in
//	                             0.0.0.0:9720, becomes this machine's host name)
//	store.sync                   always
//	icmp                         interval 10s, timeout 1s, count 1, privileged auto
//	snmp                         poll_interval 60s, timeout 2s, retries 1; profile port 161
//	traps (when the section is   listen 0.0.0.0:162, unknown_sources accept,
//	  present; absent = off)     rate_limit_per_source 1000, max_unknown_sources 1000,
//	                             unknown_expire 24h
//	destinations                 timeout 10s, retry initial 1s, max 5m, max_age 24h,
//	                             probe_interval 5s (each retry field separately)
//	subscriptions                send_resolved true
//	noise.flap                   changes 5, window 15m
//	noise.site_outage            window 1m, min_devices 3, ratio 0.5
//	maintenance                  timezone Local (the machine's time zone)
//	history.retention            720h (30 days)
//	cluster.down_when            all (when the cluster section is present)
//	edge.buffer                  1GiB (when the edge section is present)
//	hub                          listen 0.0.0.0:7422, unreachable_after 30s
//	                             (when the hub section is present)
//
// set reports whether the file gives the key at a path: numbers default only
// when absent, because an explicit 0 means something (retries: 0, no limit)
// or is an error validation must report (count: 0). Empty strings count as
// absent.
func applyDefaults(c *Config, set func(path ...any) bool) {
	defaultString := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	defaultDuration := func(v *Duration, d time.Duration, path ...any) {
		if !set(path...) {
			*v = Duration(d)
		}
	}
	defaultInt := func(v *int, d int, path ...any) {
		if !set(path...) {
			*v = d
		}
	}

	defaultString(&c.StateDir, defaultStateDir)
	defaultString(&c.HTTP.Listen, defaultHTTPListen)
	defaultString(&c.ExternalURL, externalURLFor(c.HTTP.Scheme(), c.HTTP.Listen))
	defaultString(&c.Store.Sync, defaultStoreSync)

	defaultDuration(&c.ICMP.Interval, defaultICMPInterval, "icmp", "interval")
	defaultDuration(&c.ICMP.Timeout, defaultICMPTimeout, "icmp", "timeout")
	defaultInt(&c.ICMP.Count, defaultICMPCount, "icmp", "count")
	if c.ICMP.Privileged == "" {
		c.ICMP.Privileged = PrivilegedAuto
	}

	defaultDuration(&c.SNMP.PollInterval, defaultSNMPPollInterval, "snmp", "poll_interval")
	defaultDuration(&c.SNMP.Timeout, defaultSNMPTimeout, "snmp", "timeout")
	defaultInt(&c.SNMP.Retries, defaultSNMPRetries, "snmp", "retries")
	for name, p := range c.SNMP.Profiles {
		defaultInt(&p.Port, defaultSNMPPort, "snmp", "profiles", name, "port")
		c.SNMP.Profiles[name] = p
	}

	if set("traps") {
		defaultString(&c.Traps.Listen, defaultTrapListen)
		defaultString(&c.Traps.UnknownSources, defaultTrapUnknownSources)
		defaultInt(&c.Traps.RateLimitPerSource, defaultTrapRateLimitPerSource, "traps", "rate_limit_per_source")
		defaultInt(&c.Traps.MaxUnknownSources, defaultTrapMaxUnknownSources, "traps", "max_unknown_sources")
		defaultDuration(&c.Traps.UnknownExpire, defaultTrapUnknownExpire, "traps", "unknown_expire")
	}

	defaultInt(&c.Noise.Flap.Changes, defaultFlapChanges, "noise", "flap", "changes")
	defaultDuration(&c.Noise.Flap.Window, defaultFlapWindow, "noise", "flap", "window")
	defaultDuration(&c.Noise.SiteOutage.Window, defaultSiteWindow, "noise", "site_outage", "window")
	defaultInt(&c.Noise.SiteOutage.MinDevices, defaultSiteMinDevices, "noise", "site_outage", "min_devices")
	if !set("noise", "site_outage", "ratio") {
		c.Noise.SiteOutage.Ratio = defaultSiteRatio
	}

	for i := range c.Destinations {
		d := &c.Destinations[i]
		defaultDuration(&d.Timeout, defaultDestinationTimeout, "destinations", i, "timeout")
		defaultDuration(&d.Retry.Initial, defaultRetryInitial, "destinations", i, "retry", "initial")
		defaultDuration(&d.Retry.Max, defaultRetryMax, "destinations", i, "retry", "max")
		defaultDuration(&d.Retry.MaxAge, defaultRetryMaxAge, "destinations", i, "retry", "max_age")
		defaultDuration(&d.Retry.ProbeInterval, defaultRetryProbeInterval, "destinations", i, "retry", "probe_interval")
	}
	for i := range c.Subscriptions {
		if c.Subscriptions[i].SendResolved == nil {
			yes := true
			c.Subscriptions[i].SendResolved = &yes
		}
	}
	for i := range c.Maintenance {
		defaultString(&c.Maintenance[i].Timezone, defaultMaintenanceTimezone)
	}
	defaultDuration(&c.History.Retention, defaultHistoryRetention, "history", "retention")
	if c.Cluster != nil && c.Cluster.DownWhen == "" {
		c.Cluster.DownWhen = defaultClusterDownWhen
	}
	if c.Edge != nil && !set("edge", "buffer") {
		c.Edge.Buffer = defaultEdgeBuffer
	}
	if c.Hub != nil {
		defaultString(&c.Hub.Listen, defaultHubListen)
		defaultDuration(&c.Hub.UnreachableAfter, defaultHubUnreachableAfter, "hub", "unreachable_after")
	}
}

// externalURLFor is the URL of the API at listen, served with scheme.
// Links to a wildcard address (0.0.0.0, ::, or no host) open nowhere, so
// those use the host name instead, as Prometheus does for its external URL.
func externalURLFor(scheme, listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return scheme + "://" + listen // validation reports the bad listen address
	}
	if a, err := netip.ParseAddr(host); host == "" || (err == nil && a.IsUnspecified()) {
		if host, err = os.Hostname(); err != nil || host == "" {
			host = "localhost"
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// Defaults is the config of an empty file: every default filled in, no
// devices, rules or destinations (rule tests without a config file use it).
func Defaults() *Config {
	c := &Config{}
	applyDefaults(c, func(...any) bool { return false })
	return c
}
