package metrics

import (
	"strings"
	"sync"
	"sync/atomic"
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
	known sync.Map // name -> the kept copy of it; read without locks
	mu    sync.Mutex
	n     int // names in known, under mu
	max   int
	full  atomic.Bool
}

func newModelSet(max int) *modelSet {
	return &modelSet{max: max}
}

// label returns the label value for model. A known name costs a lock-free
// map hit; a new one is copied, so the set never pins a caller's buffer.
func (s *modelSet) label(model string) string {
	if model == "" || model == modelUnknown {
		// Fixed, and what made-up names fail as: it takes no slot, so a
		// full set does not turn it into other.
		return modelUnknown
	}
	if v, ok := s.known.Load(model); ok {
		return v.(string)
	}
	if s.full.Load() || len(model) > maxModelLen || !utf8.ValidString(model) {
		return modelOther
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.known.Load(model); ok {
		return v.(string)
	}
	if s.n >= s.max {
		s.full.Store(true)
		return modelOther
	}
	v := strings.Clone(model)
	s.known.Store(v, v)
	s.n++
	if s.n >= s.max {
		s.full.Store(true)
	}
	return v
}

// len is the number of names kept.
func (s *modelSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}
