package metrics

import (
	"strings"
	"sync"
	"unicode/utf8"
)

// Model label values that are not model names.
const (
	modelUnknown = "unknown" // the caller had no model name
	modelOther   = "other"   // past the bound, too long, or not UTF-8
)

// maxModelLen caps a kept model name; real names are well under it, and the
// cap keeps the kept set small even when clients send huge strings.
const maxModelLen = 256

// modelSet admits the first max distinct model names as label values and maps
// every later one to "other", so the `model` label, and every cache keyed by
// it, stays bounded however many names clients invent.
type modelSet struct {
	mu  sync.RWMutex
	max int
	m   map[string]string // name -> the kept copy of it
}

func newModelSet(max int) *modelSet {
	return &modelSet{max: max, m: make(map[string]string)}
}

// label returns the label value for model. A known name costs a read lock
// and a map hit; a new one is copied, so the set never pins a caller's buffer.
func (s *modelSet) label(model string) string {
	if model == "" {
		model = modelUnknown
	}
	s.mu.RLock()
	v, ok := s.m[model]
	full := len(s.m) >= s.max
	s.mu.RUnlock()
	if ok {
		return v
	}
	if full || len(model) > maxModelLen || !utf8.ValidString(model) {
		return modelOther
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[model]; ok {
		return v
	}
	if len(s.m) >= s.max {
		return modelOther
	}
	v = strings.Clone(model)
	s.m[v] = v
	return v
}
