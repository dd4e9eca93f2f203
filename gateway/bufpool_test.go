package gateway

import "testing"

func TestBufferPoolRecyclesWithoutAllocating(t *testing.T) {
	p := newBufferPool()
	p.Put(p.Get()) // fill both pools
	allocs := testing.AllocsPerRun(100, func() {
		b := p.Get()
		if len(b) != copyBufferSize {
			t.Fatalf("buffer of %d bytes", len(b))
		}
		p.Put(b)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Get and Put", allocs)
	}
	p.Put(make([]byte, 10)) // a foreign buffer is dropped
	if b := p.Get(); len(b) != copyBufferSize {
		t.Fatalf("got a buffer of %d bytes", len(b))
	}
}
