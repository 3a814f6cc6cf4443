package event

// DNACPayload mirrors a Cisco DNA Center (Catalyst Center) event notification.
// Field order and JSON types follow payloads real DNA Center releases send:
// tags and context are strings, severity and timestamp numbers.
type DNACPayload struct {
	Version           string            `json:"version"`
	InstanceID        string            `json:"instanceId"`
	EventID           string            `json:"eventId"`
	Namespace         string            `json:"namespace"`
	Name              string            `json:"name"`
	Description       string            `json:"description"`
	Type              string            `json:"type"`
	Category          string            `json:"category"`
	Domain            string            `json:"domain"`
	SubDomain         string            `json:"subDomain"`
	Severity          int               `json:"severity"`
	Source            string            `json:"source"`
	Timestamp         int64             `json:"timestamp"`
	Tags              string            `json:"tags"`
	Details           map[string]string `json:"details"`
	CiscoDnaEventLink string            `json:"ciscoDnaEventLink"`
	Note              string            `json:"note"`
	TntID             string            `json:"tntId"`
	Context           string            `json:"context"`
	TenantID          string            `json:"tenantId"`
}

// issueCategory is the rule's issue_category, or for a rule without one
// (and events stored before rules had it) a category derived from its
// domain.
func issueCategory(e Event) string {
	if e.IssueCategory != "" {
		return e.IssueCategory
	}
	switch e.Domain {
	case "Connectivity", "Availability":
		return "Availability"
	case "":
		return "Other"
	default:
		return e.Domain
	}
}

// eventType is the first part of the DNA Center event id (NETWORK, SECURITY…).
func eventType(e Event) string {
	for i := 0; i < len(e.EventID); i++ {
		if e.EventID[i] == '-' {
			return e.EventID[:i]
		}
	}
	if e.EventID == "" {
		return "NETWORK"
	}
	return e.EventID
}

// DNAC renders the event as DNA Center would send it: name and eventId say
// what kind of event it is, the same for every device (receivers match on
// them); details["Assurance Issue Name"] names the issue, the thing and the
// device, as DNA Center's own issue names do.
func (e Event) DNAC(externalURL string) DNACPayload {
	details := map[string]string{
		"Type":                     "Network Device",
		"Device":                   e.Device.Address,
		"Device Name":              e.Device.Name,
		"Site":                     e.Device.Site,
		"Device Role":              e.Device.Role,
		"Assurance Issue Name":     e.Name,
		"Assurance Issue Details":  e.Description,
		"Assurance Issue Priority": e.Priority(),
		"Assurance Issue Category": issueCategory(e),
		"Assurance Issue Status":   string(e.Status),
	}
	if e.Key != "" {
		details["Instance"] = e.Key
	}
	for k, v := range e.Details {
		if _, taken := details[k]; !taken {
			details[k] = v
		}
	}
	return DNACPayload{
		Version:           "1.0.0",
		InstanceID:        e.InstanceID,
		EventID:           e.EventID,
		Namespace:         "ASSURANCE",
		Name:              e.GenericName(),
		Description:       e.Description,
		Type:              eventType(e),
		Category:          e.Category,
		Domain:            e.Domain,
		SubDomain:         e.SubDomain,
		Severity:          e.Severity,
		Source:            e.Source,
		Timestamp:         e.Timestamp.UnixMilli(),
		Tags:              "",
		Details:           details,
		CiscoDnaEventLink: e.AlertURL(externalURL),
		Note:              "",
		TntID:             "",
		Context:           "",
		TenantID:          "",
	}
}
