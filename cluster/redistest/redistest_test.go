package redistest

import (
	"fmt"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeTB records how Start gives up; Fatalf and Skipf end the call by
// panicking, as the real ones end the goroutine.
type fakeTB struct {
	testing.TB
	how string
}

type stopped struct{}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.how = "fatal: " + fmt.Sprintf(format, args...)
	panic(stopped{})
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.how = "skip: " + fmt.Sprintf(format, args...)
	panic(stopped{})
}

func TestMissingServer(t *testing.T) {
	for _, tc := range []struct{ ci, want string }{
		{"true", "fatal: redis-server is not installed"},
		{"", "skip: redis-server is not installed"},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("PATH", t.TempDir())
			t.Setenv("CI", tc.ci)
			f := &fakeTB{TB: t}
			func() {
				defer func() {
					if r := recover(); r != nil {
						if _, ok := r.(stopped); !ok {
							panic(r)
						}
					}
				}()
				Start(f)
			}()
			if !strings.HasPrefix(f.how, tc.want) {
				t.Fatalf("Start without redis-server: %q, want %q", f.how, tc.want)
			}
		})
	}
}

func TestFreezeThawRestart(t *testing.T) {
	s := Start(t)
	if got, err := s.Do("SET", "k", "v"); err != nil || got != "+OK" {
		t.Fatalf("SET = %q, %v", got, err)
	}
	s.Freeze()
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("a frozen server answered")
	}
	s.Thaw()
	if got, err := s.Do("EXISTS", "k"); err != nil || got != ":1" {
		t.Fatalf("after thaw EXISTS = %q, %v", got, err)
	}
	s.Restart()
	if got, err := s.Do("EXISTS", "k"); err != nil || got != ":0" {
		t.Fatalf("a restarted server kept data: EXISTS = %q, %v", got, err)
	}
}
