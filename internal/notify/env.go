package notify

import (
	"log/slog"
	"net/http"

	"github.com/nocbridge/nocbridge/internal/config"
)

// DefaultUserAgent is sent when Env.UserAgent is unset.
const DefaultUserAgent = "nocbridge"

// Deps is what an HTTP destination takes from its Env, defaults filled in.
type Deps struct {
	Client    *http.Client
	UserAgent string
	// Logger already names the destination; types add only their own keys.
	Logger *slog.Logger
}

// Deps returns env.HTTPClient, or else a client built from d's timeout, tls
// and proxy_url; env.UserAgent or DefaultUserAgent; env.Logger or one that
// discards. A client that cannot be built is a config error at d's line.
func (env Env) Deps(d config.Destination) (Deps, error) {
	deps := Deps{Client: env.HTTPClient, UserAgent: env.UserAgent, Logger: env.Logger}
	if deps.Client == nil {
		c, err := NewHTTPClient(d, env.BaseDir)
		if err != nil {
			return Deps{}, config.Errors{{File: env.ConfigFile, Line: d.Line, Msg: err.Error()}}
		}
		deps.Client = c
	}
	if deps.UserAgent == "" {
		deps.UserAgent = DefaultUserAgent
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return deps, nil
}

// Prepare is how every type's New starts: decode d's own keys into a C,
// check them with validate (all problems at once, sorted, each at its line)
// into settings S, and take the Deps. validate is usually the method
// expression (*Config).validate.
func Prepare[C, S any](d config.Destination, env Env, validate func(*C, Env, config.Destination) (S, config.Errors)) (S, Deps, error) {
	var cfg C
	var none S
	if err := DecodeConfig(env, d, &cfg); err != nil {
		return none, Deps{}, err
	}
	s, errs := validate(&cfg, env, d)
	if len(errs) > 0 {
		return none, Deps{}, errs.Sorted()
	}
	deps, err := env.Deps(d)
	if err != nil {
		return none, Deps{}, err
	}
	return s, deps, nil
}
