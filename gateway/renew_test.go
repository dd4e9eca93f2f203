package gateway

import (
	"net/http/httptest"
	"testing"
	"time"
)

// deadlineRecorder is a ResponseWriter whose connection deadline is seen.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	deadline time.Time
	sets     int
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	d.deadline, d.sets = t, d.sets+1
	return nil
}

// TestClientWriterDeadlineStaysAhead: whatever renew skips, every write
// meets a deadline at least WRITE_TIMEOUT ahead and at most the slack
// more, and each answer on a connection sets its own at its start.
func TestClientWriterDeadlineStaysAhead(t *testing.T) {
	for _, timeout := range []time.Duration{time.Millisecond, 80 * time.Millisecond, time.Minute} {
		t.Run(timeout.String(), func(t *testing.T) {
			rec := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
			slack := renewSlack(timeout)
			check := func(what string, before, after time.Time) {
				t.Helper()
				if rec.deadline.Before(before.Add(timeout)) || rec.deadline.After(after.Add(timeout+slack)) {
					t.Fatalf("%s: deadline %v, want within [%v, %v]", what, rec.deadline,
						before.Add(timeout), after.Add(timeout+slack))
				}
			}
			for answer := range 3 {
				sets := rec.sets
				before := time.Now()
				cw := newClientWriter(rec, nil, timeout, nil)
				check("start", before, time.Now())
				if rec.sets != sets+1 {
					t.Fatalf("answer %d set no deadline of its own at its start", answer)
				}
				for i := range 20 {
					before := time.Now()
					if _, err := cw.Write([]byte("chunk ")); err != nil {
						t.Fatal(err)
					}
					check("write", before, time.Now())
					if i%5 == 0 {
						before := time.Now()
						if err := cw.FlushError(); err != nil {
							t.Fatal(err)
						}
						check("flush", before, time.Now())
					}
					if timeout < time.Second {
						time.Sleep(timeout / 4) // past the slack now and then
					}
				}
				cw.finish()
				cw.release()
			}
		})
	}
}

// TestClientWriterDeadlineSharedByConnection: the answers of one
// connection, one after the other, move its write deadline only when the
// last move is the slack old, or was for another timeout; every write
// still meets a deadline at least WRITE_TIMEOUT ahead.
func TestClientWriterDeadlineSharedByConnection(t *testing.T) {
	const timeout = 80 * time.Millisecond
	slack := renewSlack(timeout)
	rec := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
	conn := new(connState)
	answer := func(timeout time.Duration) (moved bool) {
		t.Helper()
		sets := rec.sets
		before := time.Now()
		cw := newClientWriter(rec, nil, timeout, conn)
		if _, err := cw.Write([]byte("answer")); err != nil {
			t.Fatal(err)
		}
		if rec.deadline.Before(before.Add(timeout)) {
			t.Fatalf("deadline %v, less than %v ahead of %v", rec.deadline, timeout, before)
		}
		cw.finish()
		cw.release()
		return rec.sets > sets
	}
	if !answer(timeout) {
		t.Fatal("the connection's first answer set no deadline")
	}
	for i := range 5 {
		if answer(timeout) {
			t.Fatalf("answer %d, right after the last, moved the deadline again", i+2)
		}
	}
	time.Sleep(slack + slack/2)
	if !answer(timeout) {
		t.Fatal("an answer the slack after the last move left the deadline")
	}
	if !answer(2 * timeout) {
		t.Fatal("an answer with another timeout left the deadline set for the old one")
	}
}

// TestConnOf: the connection state reaches the answers of HTTP/1 requests
// on a server with ConnContext, and only theirs.
func TestConnOf(t *testing.T) {
	ctx := ConnContext(t.Context(), nil)
	r := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
	if connOf(r) == nil {
		t.Fatal("an HTTP/1 request has no connection state")
	}
	if connOf(r) != connOf(r.Clone(ctx)) {
		t.Fatal("two requests of one connection have different states")
	}
	h2 := r.Clone(ctx)
	h2.ProtoMajor = 2
	if connOf(h2) != nil {
		t.Fatal("an HTTP/2 request shares a connection state")
	}
	if connOf(httptest.NewRequest("GET", "/", nil)) != nil {
		t.Fatal("a request without ConnContext has a state")
	}
}
