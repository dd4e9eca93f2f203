package relay

import (
	"testing"
	"unsafe"
)

// TestWatchedBodySizeClass: every attempt allocates one watchedBody, on
// the hot path. It fit the 352-byte size class before the resent flag;
// the flag must fit the struct's padding, not push every call's
// allocation to the 384-byte class (+32 B/op in BenchmarkDo).
func TestWatchedBodySizeClass(t *testing.T) {
	if n := unsafe.Sizeof(watchedBody{}); n > 352 {
		t.Fatalf("watchedBody is %d bytes, past the 352-byte size class", n)
	}
}
