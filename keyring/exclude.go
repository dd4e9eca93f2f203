package keyring

import "math/bits"

// Exclude is a set of pool slots a strategy must not pick: the keys a request
// already tried. The zero value is empty and holds up to 64 slots without
// allocating; larger pools spill into a slice.
type Exclude struct {
	small uint64
	large []uint64
}

// Add puts slot in the set.
func (e *Exclude) Add(slot int) {
	if slot < 64 {
		e.small |= 1 << uint(slot)
		return
	}
	w := slot/64 - 1
	for len(e.large) <= w {
		e.large = append(e.large, 0)
	}
	e.large[w] |= 1 << uint(slot%64)
}

// Has reports whether slot is in the set. A nil *Exclude is empty.
func (e *Exclude) Has(slot int) bool {
	if e == nil {
		return false
	}
	if slot < 64 {
		return e.small&(1<<uint(slot)) != 0
	}
	w := slot/64 - 1
	return w < len(e.large) && e.large[w]&(1<<uint(slot%64)) != 0
}

// Len is the number of slots in the set.
func (e *Exclude) Len() int {
	if e == nil {
		return 0
	}
	n := bits.OnesCount64(e.small)
	for _, w := range e.large {
		n += bits.OnesCount64(w)
	}
	return n
}

// CopyFrom makes e a copy of o, reusing e's storage.
func (e *Exclude) CopyFrom(o *Exclude) {
	e.small = o.small
	e.large = append(e.large[:0], o.large...)
}

// Union adds every slot of o to e.
func (e *Exclude) Union(o *Exclude) {
	e.small |= o.small
	for i, w := range o.large {
		if i == len(e.large) {
			e.large = append(e.large, 0)
		}
		e.large[i] |= w
	}
}

// Reset empties the set.
func (e *Exclude) Reset() {
	e.small = 0
	e.large = e.large[:0]
}
