package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestStaleConnection: only a reset or an end before any answer, at once,
// reads as a keep-alive connection upstream had closed; a late one (a
// generation may have run, and been billed), a refused dial or the
// caller's own cancel does not.
func TestStaleConnection(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: fmt.Errorf("read: %w", syscall.ECONNRESET)}
	for _, tt := range []struct {
		name    string
		err     error
		elapsed time.Duration
		want    bool
	}{
		{"EOF at once", fmt.Errorf("wrapped: %w", io.EOF), time.Millisecond, true},
		{"reset at once", reset, time.Millisecond, true},
		{"broken pipe at once", &net.OpError{Op: "write", Err: syscall.EPIPE}, time.Millisecond, true},
		{"Go's idle close", errors.New("http: server closed idle connection"), time.Millisecond, true},
		{"EOF late", io.EOF, 2 * staleWindow, false},
		{"refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, time.Millisecond, false},
		{"cancelled", fmt.Errorf("%w: %w", context.Canceled, io.EOF), time.Millisecond, false},
		{"deadline", context.DeadlineExceeded, time.Millisecond, false},
	} {
		if got := staleConnection(tt.err, tt.elapsed); got != tt.want {
			t.Errorf("%s: staleConnection = %v, want %v", tt.name, got, tt.want)
		}
	}
}
