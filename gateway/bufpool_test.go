package gateway

import "testing"

func TestBufferPoolRecyclesWithoutAllocating(t *testing.T) {
	for _, size := range []int{copyBufferSize, streamCopyBufferSize} {
		p := newBufferPool(size)
		p.Put(p.Get()) // fill both pools
		get := func() {
			b := p.Get()
			if len(b) != size {
				t.Fatalf("buffer of %d bytes, want %d", len(b), size)
			}
			p.Put(b)
		}
		if raceOn {
			// Its Puts are dropped at random: counted, the pool failed
			// now and then (CI runs -race); `go test ./...` counts.
			get()
		} else if allocs := testing.AllocsPerRun(100, get); allocs != 0 {
			t.Fatalf("%v allocations per Get and Put", allocs)
		}
		p.Put(make([]byte, 10))     // a foreign buffer is dropped
		p.Put(make([]byte, size*2)) // as is one of another pool's size
		if b := p.Get(); len(b) != size {
			t.Fatalf("got a buffer of %d bytes, want %d", len(b), size)
		}
	}
}
