package store

import (
	"context"
	"slices"
	"sync"
)

// Memory is Records kept in memory: what a simulation (nocbridge test
// rules) or a test gives the components that keep state in a bucket. It
// lives as long as its value, so handing the same one to a component built
// again stands for a restart.
type Memory struct {
	mu sync.Mutex
	m  map[string][]byte
}

var _ Records = (*Memory)(nil)

// NewMemory returns empty Records in memory.
func NewMemory() *Memory { return &Memory{m: map[string][]byte{}} }

// Put keeps a copy of value under key.
func (s *Memory) Put(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = slices.Clone(value)
	return nil
}

// Delete forgets key.
func (s *Memory) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

// All is a copy of every key and value.
func (s *Memory) All(context.Context) (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]byte, len(s.m))
	for k, v := range s.m {
		out[k] = slices.Clone(v)
	}
	return out, nil
}
