package gateway

import "sync"

// copyBufferSize is the size of the proxy's copy buffers. A stream holds
// one for as long as it lasts, and a recycled buffer is resident in full,
// so it is sized for LLM answers rather than for bulk transfer: an SSE
// chunk (a few hundred bytes) comes in one read, a larger one or a JSON
// body in a few, each passed on as it comes. 2 KiB, not httputil.ReverseProxy's
// 32 KiB: at 1,000 open streams 8 KiB cost 5-6 KiB more heap per stream.
const copyBufferSize = 2 << 10

// streamCopyBufferSize is the copy buffer of a request that asks for a
// stream ("stream": true): held for the stream's whole life, with chunks
// of a few hundred bytes, a kilobyte takes one in a read as well, and at
// 10,000 open streams the kilobyte saved is 10 MB.
const streamCopyBufferSize = 1 << 10

// bufferPool recycles the proxy's copy buffers. sync.Pool holds pointers
// (a slice put in an interface would be allocated); the pointers themselves
// go back to a second pool on Get, so that Put, which only gets the slice,
// allocates nothing either.
type bufferPool struct {
	size    int
	bufs    sync.Pool // *[]byte holding a buffer
	holders sync.Pool // *[]byte holding nil
}

func newBufferPool(size int) *bufferPool {
	b := &bufferPool{size: size}
	b.bufs.New = func() any { s := make([]byte, size); return &s }
	b.holders.New = func() any { return new([]byte) }
	return b
}

// Get returns a buffer of the pool's size.
func (b *bufferPool) Get() []byte {
	h := b.bufs.Get().(*[]byte)
	buf := *h
	*h = nil
	b.holders.Put(h)
	return buf
}

// Put takes buf back, if it is one of the pool's size.
func (b *bufferPool) Put(buf []byte) {
	if cap(buf) != b.size {
		return
	}
	h := b.holders.Get().(*[]byte)
	*h = buf[:b.size]
	b.bufs.Put(h)
}
