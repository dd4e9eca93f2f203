package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/simulator"
)

// shutdownKey is the one pool key of the process tests.
const shutdownKey = "sk-or-v1-5hutd0wn0123456789abcdef0123456789abcdef0123456789abcdef"

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// process is a keygate binary running against a simulator.
type process struct {
	cmd  *exec.Cmd
	url  string
	out  *lockedBuffer
	sim  *simulator.Server
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's, once done is closed
}

// startProcess builds keygate into a temporary directory and runs it on a
// free loopback port against a fresh simulator.
func startProcess(t *testing.T, env ...string) *process {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "keygate")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sim, err := simulator.Start(simulator.Options{Keys: map[string]simulator.Profile{shutdownKey: {}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()

	p := &process{url: "http://127.0.0.1:" + port, out: &lockedBuffer{}, sim: sim, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "-env-file", filepath.Join(dir, "none.env"))
	p.cmd.Dir = dir
	p.cmd.Env = append([]string{"OPENROUTER_BASE_URL=" + sim.BaseURL(), "OPENROUTER_API_KEY_1=" + shutdownKey, "PORT=" + port}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keygate never answered /healthz: %v\n%s", err, p.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// wait returns the process's exit status, failing after limit.
func (p *process) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		var ee *exec.ExitError
		if errors.As(p.err, &ee) {
			return ee.ExitCode()
		}
		if p.err != nil {
			t.Fatalf("wait: %v", p.err)
		}
		return 0
	case <-time.After(limit):
		t.Fatalf("keygate still running %v after the signal\n%s", limit, p.out)
		return -1
	}
}

// openStream starts a streamed chat completion and reads its first event,
// so that the stream is open end to end when it returns.
func (p *process) openStream(t *testing.T, faults string) (*http.Response, *bufio.Reader, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"a/b","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set(simulator.HeaderFault, faults)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %v %v", resp, err)
	}
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadBytes('\n')
	if err != nil {
		t.Fatalf("first event: %v", err)
	}
	return resp, br, first
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestShutdownFinishesRequestsInFlight: at SIGTERM a slow request and an
// open stream are both answered in full, new connections are refused, and
// the process exits 0.
func TestShutdownFinishesRequestsInFlight(t *testing.T) {
	p := startProcess(t, "SHUTDOWN_TIMEOUT=20s")
	slow := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, p.url+"/v1/chat/completions",
			strings.NewReader(`{"model":"a/b","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set(simulator.HeaderFault, "delay=1500ms")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			slow <- err
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		switch {
		case err != nil:
			slow <- err
		case resp.StatusCode != http.StatusOK || resp.Header.Get(simulator.HeaderBodySHA256) != sum(body):
			slow <- errors.New("slow answer " + resp.Status + " not intact: " + string(body))
		default:
			slow <- nil
		}
	}()
	stream, br, first := p.openStream(t, "chunks=6,chunkdelay=250ms")
	defer stream.Body.Close()
	for deadline := time.Now().Add(5 * time.Second); p.sim.Stats().InFlight < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the slow request never reached upstream")
		}
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	refused := false
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(p.url, "http://"), 100*time.Millisecond)
		if err != nil {
			refused = true
			break
		}
		c.Close()
	}
	if !refused {
		t.Error("still accepting connections a second after SIGTERM")
	}
	if p.sim.Stats().InFlight == 0 {
		t.Error("the requests in flight ended before the listener closed: the test proves nothing")
	}

	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("stream cut at shutdown: %v", err)
	}
	if body := append(first, rest...); stream.Trailer.Get(simulator.HeaderBodySHA256) != sum(body) {
		t.Fatalf("stream not intact (%d bytes):\n%s", len(body), body)
	}
	if err := <-slow; err != nil {
		t.Fatalf("slow request at shutdown: %v", err)
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d, want 0\n%s", code, p.out)
	}
	for _, line := range []string{"Shutting down", "keygate stopped"} {
		if !strings.Contains(p.out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, p.out)
		}
	}
}

// TestSecondSignalExitsAtOnce: a second signal during the graceful wait
// ends the process at once, with a non-zero status, open stream or not.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	p := startProcess(t, "SHUTDOWN_TIMEOUT=60s")
	stream, br, _ := p.openStream(t, "chunks=200,chunkdelay=100ms")
	defer stream.Body.Close()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.out.String(), "Shutting down"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no shutdown after SIGTERM:\n%s", p.out)
		}
	}
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := p.wait(t, 3*time.Second)
	if code == 0 {
		t.Errorf("exit status 0 after a forced stop\n%s", p.out)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v to exit after the second signal", d)
	}
	if _, err := io.ReadAll(br); err == nil {
		t.Error("the open stream ended cleanly: it should have been cut")
	}
}
