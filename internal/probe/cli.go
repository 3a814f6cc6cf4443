package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/nocbridge/nocbridge/internal/config"
)

// Command is `nocbridge probe --config PATH [--json] DEVICE|ADDRESS`: it
// loads the config at path, probes target with it and writes the result to
// out, as aligned lines or as JSON. answered says whether the device
// answered ping or SNMP. The error is the config's (config.Errors), or
// ErrTarget for a target that is neither a device nor an address.
func Command(ctx context.Context, path, target string, asJSON bool, out io.Writer) (answered bool, err error) {
	return New(Options{Logger: slog.New(slog.DiscardHandler)}).Command(ctx, path, target, asJSON, out)
}

// Command is the package's Command with this Prober's pinger and SNMP
// client.
func (p *Prober) Command(ctx context.Context, path, target string, asJSON bool, out io.Writer) (bool, error) {
	if target == "" {
		return false, fmt.Errorf("%w: say which device: nocbridge probe --config PATH DEVICE|ADDRESS", ErrTarget)
	}
	cfg, err := config.Load(path)
	if err != nil {
		return false, err
	}
	s, err := SnapshotOf(cfg)
	if err != nil {
		return false, config.Error{File: path, Msg: err.Error()}
	}
	r, err := p.Probe(ctx, s, target)
	if err != nil {
		return false, err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		err = enc.Encode(r)
	} else {
		err = r.WriteText(out)
	}
	if err != nil {
		return false, fmt.Errorf("writing the result: %w", err)
	}
	return r.Answered, nil
}
