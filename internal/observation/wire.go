package observation

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/nocbridge/nocbridge/internal/inventory"
)

// The wire form carries an observation from the node that saw it to the
// node that evaluates it (a cluster's leader, an edge site's hub). Rules
// are type-checked against Schema, so every value keeps its Go type: each
// is written as a one-letter type tag and its text, numbers in Go's own
// round-tripping formatting (NaN and ±Inf included, which JSON numbers
// cannot carry).

// ErrUnknownDevice is Unmarshal's error for an observation about a device
// the receiving node's inventory does not have (a config not yet reloaded
// everywhere): the caller counts and drops it.
var ErrUnknownDevice = errors.New("device not in this node's inventory")

type wireObs struct {
	Source  Source          `json:"s"`
	Device  string          `json:"d"`
	Address string          `json:"a,omitempty"`
	Time    int64           `json:"t"` // Unix nanoseconds
	Vars    json.RawMessage `json:"v,omitempty"`
	Err     string          `json:"e,omitempty"`
	Reason  string          `json:"r,omitempty"`
}

// Marshal is o's wire form. Ack is not carried: acknowledging is the
// receiving side's business.
func Marshal(o Observation) ([]byte, error) {
	if o.Device == nil {
		return nil, errors.New("observation without a device")
	}
	w := wireObs{Source: o.Source, Device: o.Device.Name, Address: o.Device.Address, Time: o.Time.UnixNano(), Reason: o.Reason}
	if o.Err != nil {
		w.Err = o.Err.Error()
	}
	if o.Vars != nil {
		v, err := encodeValue(o.Vars)
		if err != nil {
			return nil, fmt.Errorf("observation of %s: %w", o.Device.Name, err)
		}
		if w.Vars, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("observation of %s: %w", o.Device.Name, err)
		}
	}
	return json.Marshal(w)
}

// Unmarshal reads an observation Marshal wrote. lookup finds the device in
// the receiving node's inventory by name, or, for an unknown trap sender,
// by its address (see inventory.UnknownSender); nil makes the error
// ErrUnknownDevice.
func Unmarshal(b []byte, lookup func(name string, addr netip.Addr) *inventory.Device) (Observation, error) {
	var w wireObs
	if err := json.Unmarshal(b, &w); err != nil {
		return Observation{}, fmt.Errorf("observation wire form: %w", err)
	}
	if w.Device == "" || w.Source == "" {
		return Observation{}, errors.New("observation wire form: no device or source")
	}
	addr, _ := netip.ParseAddr(w.Address) // zero when the device is named by a host name
	dev := lookup(w.Device, addr)
	if dev == nil {
		return Observation{}, fmt.Errorf("observation of %s: %w", w.Device, ErrUnknownDevice)
	}
	o := Observation{Source: w.Source, Device: dev, Time: time.Unix(0, w.Time), Reason: w.Reason}
	if w.Err != "" {
		o.Err = errors.New(w.Err)
	}
	if len(w.Vars) > 0 {
		var raw tagged
		if err := json.Unmarshal(w.Vars, &raw); err != nil {
			return Observation{}, fmt.Errorf("observation of %s: vars: %w", w.Device, err)
		}
		v, err := decodeValue(raw)
		if err != nil {
			return Observation{}, fmt.Errorf("observation of %s: vars: %w", w.Device, err)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return Observation{}, fmt.Errorf("observation of %s: vars are not a map", w.Device)
		}
		o.Vars = m
	}
	return o, nil
}

// tagged is one value: T its type, S a scalar's text, M a map's entries
// (encoding/json writes them sorted by key, so one observation always has
// one wire form), A a list.
type tagged struct {
	T string            `json:"t"`
	S string            `json:"s,omitempty"`
	M map[string]tagged `json:"m,omitempty"`
	A []tagged          `json:"a,omitempty"`
}

func encodeValue(v any) (tagged, error) {
	switch x := v.(type) {
	case nil:
		return tagged{T: "n"}, nil
	case bool:
		return tagged{T: "b", S: strconv.FormatBool(x)}, nil
	case int:
		return tagged{T: "i", S: strconv.Itoa(x)}, nil
	case int64:
		return tagged{T: "i64", S: strconv.FormatInt(x, 10)}, nil
	case uint64:
		return tagged{T: "u64", S: strconv.FormatUint(x, 10)}, nil
	case float64:
		return tagged{T: "f", S: strconv.FormatFloat(x, 'g', -1, 64)}, nil
	case string:
		return tagged{T: "s", S: x}, nil
	case map[string]any:
		m := make(map[string]tagged, len(x))
		for k, e := range x {
			t, err := encodeValue(e)
			if err != nil {
				return tagged{}, fmt.Errorf("%s: %w", k, err)
			}
			m[k] = t
		}
		return tagged{T: "m", M: m}, nil
	case []any:
		a := make([]tagged, len(x))
		for i, e := range x {
			t, err := encodeValue(e)
			if err != nil {
				return tagged{}, fmt.Errorf("[%d]: %w", i, err)
			}
			a[i] = t
		}
		return tagged{T: "a", A: a}, nil
	}
	return tagged{}, fmt.Errorf("value of type %T has no wire form", v)
}

func decodeValue(t tagged) (any, error) {
	var err error
	var v any
	switch t.T {
	case "n":
		return nil, nil
	case "b":
		v, err = strconv.ParseBool(t.S)
	case "i":
		v, err = strconv.Atoi(t.S)
	case "i64":
		v, err = strconv.ParseInt(t.S, 10, 64)
	case "u64":
		v, err = strconv.ParseUint(t.S, 10, 64)
	case "f":
		v, err = strconv.ParseFloat(t.S, 64) // "NaN", "+Inf" and "-Inf" included
	case "s":
		return t.S, nil
	case "m":
		m := make(map[string]any, len(t.M))
		for k, te := range t.M {
			e, err := decodeValue(te)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			m[k] = e
		}
		return m, nil
	case "a":
		a := make([]any, len(t.A))
		for i, e := range t.A {
			d, err := decodeValue(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			a[i] = d
		}
		return a, nil
	default:
		return nil, fmt.Errorf("unknown type tag %q", t.T)
	}
	if err != nil {
		return nil, fmt.Errorf("%s value %q: %w", t.T, t.S, err)
	}
	return v, nil
}
