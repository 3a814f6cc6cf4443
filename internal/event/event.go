// Package event is the alert notification model shared by everything
// downstream of the alert state machine, and its DNA Center rendering.
package event

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nocbridge/nocbridge/internal/inventory"
)

// Status of an alert instance at the transition that produced the event.
type Status string

const (
	StatusActive   Status = "active"
	StatusResolved Status = "resolved"
)

// KindEvent marks one-shot events (a restart, an authentication failure):
// notified once, never resolved, no alert state kept.
const KindEvent = "event"

// Categories are DNA Center's event categories, most urgent first.
var Categories = []string{"ALERT", "ERROR", "WARN", "INFO"}

// idPattern is DNA Center's event id form: TYPE-SUBDOMAIN-SEVERITY-NUMBER,
// e.g. NETWORK-DEVICES-1-101.
var idPattern = regexp.MustCompile(`^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*-[1-5]-[0-9]+$`)

// ValidID reports whether id has DNA Center's event id form.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Event is one alert transition (or one-shot event) to notify.
type Event struct {
	// InstanceID identifies the alert instance: identical for its active
	// and resolved events, new for the next time the same condition fires.
	InstanceID  string    `json:"instance_id"`
	EventID     string    `json:"event_id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Category    string    `json:"category"` // ALERT | ERROR | WARN | INFO
	Domain      string    `json:"domain"`
	SubDomain   string    `json:"sub_domain"`
	Severity    int       `json:"severity"` // 1 (most severe) … 5
	Source      string    `json:"source"`   // icmp | snmp | trap
	Timestamp   time.Time `json:"timestamp"`
	Status      Status    `json:"status"`
	// Kind is KindEvent for one-shot notifications that never resolve.
	Kind   string           `json:"kind,omitempty"`
	Device inventory.Device `json:"device"` // name, address, site, role, labels
	// Key names the instance within a device (trap rules: e.g. the ifIndex).
	Key string `json:"key,omitempty"`
	// Details are extra string fields merged into the payload's details.
	Details map[string]string `json:"details,omitempty"`
	// Update marks a repeat of an active with fresher details (the count
	// of devices unreachable behind it grew): only destinations that edit
	// the message they posted (Slack in bot mode) get it.
	Update bool `json:"update,omitempty"`

	// Name (above) is the issue's name, the rule's name template rendered
	// for the device ("Interface Gi1/0/3 is down on core-sw1"): DNA
	// Center's Assurance Issue Name and the title chat messages show.
	// EventName is the rule's generic name, the same for every device
	// ("Interface down"): the DNA Center payload's name, which receivers
	// match on; empty when the rule sets none (see GenericName).
	EventName string `json:"event_name,omitempty"`
	// IssueCategory is DNA Center's Assurance Issue Category (one of
	// IssueCategories); empty: derived from Domain (see DNAC).
	IssueCategory string `json:"issue_category,omitempty"`
}

// Dispatcher hands an event on toward its receivers (noise control,
// routing, the outbox). For an active it returns the destinations its
// resolve must go to; a resolve goes to resolveTo.
type Dispatcher interface {
	Dispatch(ctx context.Context, ev Event, resolveTo []string) ([]string, error)
}

// NotificationID is the stable webhook-id of the notification of this event to
// one destination: derived, so that re-enqueueing the same transition after a
// crash yields the same id and receivers can deduplicate on it.
func (e Event) NotificationID(destination string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d", e.InstanceID, e.Status, destination, e.Timestamp.UnixNano())
	if e.Update {
		// An update keeps the active's time; its details tell it apart.
		fmt.Fprintf(h, "\x00update\x00%s", e.Details["Affected Devices"])
	}
	return "msg_" + hex.EncodeToString(h.Sum(nil))[:32]
}

// GenericName is the event's name for every device: the rule's
// event_name, or its rendered name when it sets none (and for events
// stored before rules had one).
func (e Event) GenericName() string {
	if e.EventName != "" {
		return e.EventName
	}
	return e.Name
}

// IssueCategories are DNA Center's Assurance issue categories, as its
// event notifications spell them in details["Assurance Issue Category"]
// (the Catalyst Center Issues API lists them in lower case).
var IssueCategories = []string{"Availability", "Connectivity", "Connected", "Device", "Onboarding", "Utilization",
	"Application", "Sensor Test", "AP Anomaly", "System", "Unknown"}

// Priority is DNA Center's P<severity>.
func (e Event) Priority() string { return fmt.Sprintf("P%d", e.Severity) }

// AlertURL is the link to the alert on nocbridge's own HTTP server.
func (e Event) AlertURL(externalURL string) string {
	return strings.TrimRight(externalURL, "/") + "/alerts/" + e.InstanceID
}

// Sample returns a representative event for test-notify and template checks.
func Sample(eventID string, now time.Time) Event {
	if eventID == "" {
		eventID = "NETWORK-DEVICES-1-101"
	}
	return Event{
		InstanceID:  "00000000-0000-4000-8000-000000000001",
		EventID:     eventID,
		Name:        "Device sample-sw1 is unreachable",
		Description: "sample-sw1 (192.0.2.1) is unreachable (nocbridge test notification)",
		Category:    "ALERT",
		Domain:      "Connectivity",
		SubDomain:   "Devices",
		Severity:    1,
		Source:      "icmp",
		Timestamp:   now,
		Status:      StatusActive,
		Device:      inventory.Device{Name: "sample-sw1", Address: "192.0.2.1", Site: "HQ", Role: "core"},

		EventName:     "Device unreachable",
		IssueCategory: "Availability",
	}
}
