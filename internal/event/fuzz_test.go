package event

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/inventory"
)

// The DNA Center payload renders any event (text from devices and traps is
// anything) into JSON that decodes back to the same values, never
// panicking.
func FuzzDNAC(f *testing.F) {
	f.Add("NETWORK-DEVICES-1-101", "Device unreachable", "core-sw1 (10.0.0.1) is unreachable", "Connectivity", 1, int64(1763840000000), "core-sw1", "10.0.0.1", "Loss Percent", "100", "http://127.0.0.1:9720", true)
	f.Add("", "", "", "", 0, int64(0), "", "", "", "", "", false)
	f.Add("SECURITY-", "\x00\xff", "<script>\"", "Availability", -7, int64(-1), "ü", "::1", "Device", "override", "https://h/", false)
	f.Fuzz(func(t *testing.T, eventID, name, description, domain string, severity int, millis int64,
		device, address, detailKey, detailValue, externalURL string, resolved bool) {
		ev := Event{
			InstanceID: "i", EventID: eventID, Name: name, Description: description, Domain: domain,
			Severity: severity, Timestamp: time.UnixMilli(millis), Status: StatusActive,
			Device:  inventory.Device{Name: device, Address: address, Labels: map[string]string{detailKey: detailValue}},
			Key:     detailValue,
			Details: map[string]string{detailKey: detailValue},
		}
		if resolved {
			ev.Status = StatusResolved
		}
		p := ev.DNAC(externalURL)
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("payload does not encode: %v", err)
		}
		var back DNACPayload
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("payload does not decode: %v", err)
		}
		// Rules only let valid event ids through; "-x" renders an empty type.
		if back.Severity != severity || back.Timestamp != ev.Timestamp.UnixMilli() || (ValidID(eventID) && back.Type == "") ||
			back.Details["Assurance Issue Status"] != string(ev.Status) || back.Details["Assurance Issue Priority"] != ev.Priority() {
			t.Fatalf("payload lost values: %s", b)
		}
	})
}
