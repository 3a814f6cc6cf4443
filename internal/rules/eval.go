package rules

import (
	"fmt"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
)

// Condition is a rule's verdict on one observation for one instance.
type Condition struct {
	Rule   *Rule
	Device *inventory.Device
	Key    string
	Time   time.Time
	// Firing: when holds. Clear: clear_when holds (default: not when). With an
	// explicit clear_when both can be false (hysteresis): the state holds.
	Firing bool
	Clear  bool
	// Resolve: this observation (a trap) resolves the instance at Key.
	Resolve bool
	Value   any
	// Vars is what templates see as .Vars: a trap's varbinds by name, else
	// the observation's variables.
	Vars map[string]any
}

// Evaluate runs every rule of the observation's source that matches the
// device. Evaluation errors (e.g. a missing custom OID) are EvalErrors and
// skip that rule only; Faults.Evaluation counts and logs them. An
// observation without variables (a failed poll) is no data: no rule fires
// or clears on it.
func (s *Set) Evaluate(obs observation.Observation) ([]Condition, []error) {
	if obs.Vars == nil {
		return nil, nil
	}
	var out []Condition
	var errs []error
	env := make(map[string]any, len(obs.Vars)+1)
	for k, v := range obs.Vars {
		env[k] = v
	}
	env["device"] = deviceEnv(obs.Device)
	for _, r := range s.ForSource(obs.Source) {
		if !obs.Device.In(r.Match) {
			continue
		}
		c, ok, err := r.evaluate(env, obs)
		if err != nil {
			errs = append(errs, &EvalError{EventID: r.EventID, Device: obs.Device.Name, Err: err})
			continue
		}
		if ok {
			out = append(out, c)
		}
	}
	return out, errs
}

// EvalError is a rule's expression failing on one observation.
type EvalError struct {
	EventID, Device string
	Err             error
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("rule %s on device %s: %s", e.EventID, e.Device, words(e.Err.Error()))
}

func (e *EvalError) Unwrap() error { return e.Err }

func (r *Rule) evaluate(env map[string]any, obs observation.Observation) (Condition, bool, error) {
	c := Condition{Rule: r, Device: obs.Device, Time: obs.Time, Vars: obs.Vars}
	if varbinds, ok := obs.Vars["vars"].(map[string]any); ok {
		c.Vars = varbinds // templates see a trap's varbinds by name as .Vars (SPEC 4)
	}
	if r.value != "" {
		c.Value = env[r.value]
	}
	if r.key != nil {
		k, err := expr.Run(r.key, env)
		if err != nil {
			return c, false, fmt.Errorf("key: %w", err)
		}
		if k != nil {
			c.Key = fmt.Sprint(k)
		}
	}
	firing, err := runBool(r.when, env)
	if err != nil {
		return c, false, fmt.Errorf("when: %w", err)
	}
	c.Firing = firing
	if r.resolveWhen != nil {
		c.Resolve, err = runBool(r.resolveWhen, env)
		if err != nil {
			return c, false, fmt.Errorf("resolve_when: %w", err)
		}
		// A trap that neither raises nor resolves says nothing about this rule.
		return c, c.Firing || c.Resolve, nil
	}
	if r.Source == observation.Trap {
		return c, c.Firing, nil
	}
	if r.clearWhen != nil {
		c.Clear, err = runBool(r.clearWhen, env)
		if err != nil {
			return c, false, fmt.Errorf("clear_when: %w", err)
		}
	} else {
		c.Clear = !firing
	}
	return c, true, nil
}

func runBool(p *vm.Program, env map[string]any) (bool, error) {
	out, err := expr.Run(p, env)
	if err != nil {
		return false, err
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("expression returned %T, not bool", out)
	}
	return b, nil
}
