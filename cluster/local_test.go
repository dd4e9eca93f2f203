package cluster

import (
	"context"
	"testing"
	"time"
)

func TestNewPicksLocalWithoutURL(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, ok := s.(*Local)
	if !ok {
		t.Fatalf("New without URL = %T, want *Local", s)
	}
	l.Publish(Event{Kind: KeyRest, Key: "1:ab", Until: time.Now().Add(time.Minute)})
	for i := range 3 {
		if !l.TryTrial(ctx, "1:ab", time.Now()) || !l.TryLease(ctx, "x", time.Second) {
			t.Fatalf("call %d: a lone replica must win every trial and lease", i)
		}
	}
	if !l.Up() {
		t.Fatal("Local down")
	}
	done := make(chan error, 1)
	go func() {
		done <- l.Run(context.Background(), func(Event) { t.Error("Local delivered an event") })
	}()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_ = l.Close()
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := NewLocal().Run(cctx, nil); err != nil {
		t.Fatal(err)
	}
}

func TestNewRedisBadURL(t *testing.T) {
	if _, err := New(Options{URL: "redis://:pw@host:notaport"}); err == nil {
		t.Fatal("a bad URL was accepted")
	}
}
