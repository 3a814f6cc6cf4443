package lognotify

// Config is the log destination's own keys.
type Config struct {
	// Path is the file to append JSON lines to, relative to the config
	// file's folder; empty means stdout.
	Path string `yaml:"path"`
}
