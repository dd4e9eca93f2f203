package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/conncount"
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

// process is a keygate binary running against a simulator behind a gate.
type process struct {
	cmd  *exec.Cmd
	url  string
	out  *lockedBuffer
	up   *gate
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's, once done is closed
	// upConns counts the connections to the upstream open.
	upConns *conncount.Counter
}

// gate is the upstream of the process tests: a simulator whose chat
// completions the test holds, so that what is in flight at a signal is
// decided by the test, not by a delay racing the process. A plain call is
// held before the simulator sees it, a stream once its first event is
// flushed, until open is called (or the caller goes away). held yields the
// model of each call as it is held.
type gate struct {
	sim     *simulator.Server
	held    chan string
	release chan struct{}
	once    sync.Once
}

func newGate(sim *simulator.Server) *gate {
	return &gate{sim: sim, held: make(chan string, 16), release: make(chan struct{})}
}

// open lets every held call, and every later one, go on.
func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/chat/completions") {
		g.sim.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	_ = json.Unmarshal(body, &req)
	hold := func() bool {
		select {
		case g.held <- req.Model:
		case <-r.Context().Done():
			return false
		}
		select {
		case <-g.release:
			return true
		case <-r.Context().Done():
			return false
		}
	}
	if !req.Stream {
		if hold() {
			g.sim.ServeHTTP(w, r)
		}
		return
	}
	g.sim.ServeHTTP(&heldWriter{ResponseWriter: w, hold: hold}, r)
}

// heldWriter holds the first write after a flush until hold returns; when
// hold reports the caller gone, every later write fails.
type heldWriter struct {
	http.ResponseWriter
	hold            func() bool
	flushed, waited bool
	gone            bool
}

func (w *heldWriter) Write(b []byte) (int, error) {
	if w.flushed && !w.waited {
		w.waited = true
		w.gone = !w.hold()
	}
	if w.gone {
		return 0, errors.New("the caller went away while held")
	}
	return w.ResponseWriter.Write(b)
}

func (w *heldWriter) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
	w.flushed = true
}

func (w *heldWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

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
	sim := simulator.New(simulator.Options{Keys: map[string]simulator.Profile{shutdownKey: {}}})
	up := newGate(sim)
	upSrv := httptest.NewUnstartedServer(up)
	upConns := &conncount.Counter{}
	upSrv.Config.ConnState = upConns.Track
	upSrv.Start()
	// Runs after the process is killed (cleanups run last first), so that
	// no held call is waiting for a caller that is still there.
	t.Cleanup(func() {
		up.open()
		_ = sim.Close()
		upSrv.Close()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()

	p := &process{url: "http://127.0.0.1:" + port, out: &lockedBuffer{}, up: up, done: make(chan struct{}), upConns: upConns}
	p.cmd = exec.Command(bin, "-env-file", "/dev/null")
	p.cmd.Dir = dir
	p.cmd.Env = append([]string{"OPENROUTER_BASE_URL=" + upSrv.URL + simulator.PathPrefix, "OPENROUTER_API_KEY_1=" + shutdownKey, "PORT=" + port}, env...)
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

// wait returns the process's exit status. limit only keeps a process that
// never exits from hanging the test.
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
		t.Fatalf("keygate never exited after the signal\n%s", p.out)
		return -1
	}
}

// running fails the test if the process has exited.
func (p *process) running(t *testing.T, when string) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("keygate exited %s: %v\n%s", when, p.err, p.out)
	default:
	}
}

// waitHeld waits until n calls are held upstream.
func (p *process) waitHeld(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-p.up.held:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d calls ever reached upstream\n%s", i, n, p.out)
		}
	}
}

// openStream starts a streamed chat completion and reads its first event,
// so that the stream is open end to end when it returns; upstream then
// holds the rest of it.
func (p *process) openStream(t *testing.T) (*http.Response, *bufio.Reader, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"a/stream","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
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
// the process exits 0. Upstream holds both calls until new connections are
// seen refused, so the refusal is known to come while they are in flight;
// SHUTDOWN_TIMEOUT is far beyond the test, so only their end can end the
// graceful wait.
func TestShutdownFinishesRequestsInFlight(t *testing.T) {
	p := startProcess(t, "SHUTDOWN_TIMEOUT=1h")
	slow := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, p.url+"/v1/chat/completions",
			strings.NewReader(`{"model":"a/plain","messages":[{"role":"user","content":"hi"}]}`))
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
	stream, br, first := p.openStream(t)
	defer stream.Body.Close()
	p.waitHeld(t, 2)

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The deadline only keeps a listener that is never closed from hanging
	// the test; it bounds nothing.
	addr := strings.TrimPrefix(p.url, "http://")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
		if err == nil {
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("still accepting connections after SIGTERM, with two calls in flight (last dial: %v)", err)
		}
	}
	p.running(t, "while its requests were in flight")
	select {
	case err := <-slow:
		t.Fatalf("the slow request ended while upstream held it: %v", err)
	default:
	}

	p.up.open()
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
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d, want 0\n%s", code, p.out)
	}
	for _, line := range []string{"Shutting down", "keygate stopped"} {
		if !strings.Contains(p.out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, p.out)
		}
	}
}

// TestSecondSignalExitsAtOnce: a second signal during the graceful wait
// ends the process, with a non-zero status, and cuts the open stream. The
// stream is held upstream and SHUTDOWN_TIMEOUT is far beyond the test, so
// nothing but the second signal can end the process.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	p := startProcess(t, "SHUTDOWN_TIMEOUT=1h")
	stream, br, _ := p.openStream(t)
	defer stream.Body.Close()
	p.waitHeld(t, 1)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.out.String(), "Shutting down"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no shutdown after SIGTERM:\n%s", p.out)
		}
	}
	p.running(t, "after the first signal, with a stream open")
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 30*time.Second); code == 0 {
		t.Errorf("exit status 0 after a forced stop\n%s", p.out)
	}
	if out := p.out.String(); !strings.Contains(out, "1 cut by a second signal") || strings.Contains(out, "cut after") {
		t.Errorf("the exit line does not say the second signal cut the request:\n%s", out)
	}
	if _, err := io.ReadAll(br); err == nil {
		t.Error("the open stream ended cleanly: it should have been cut")
	}
}

// TestShutdownTimeoutCutsAndExitsNonZero: when SHUTDOWN_TIMEOUT ends the
// graceful wait with a stream still open, the process exits non-zero and
// its log says how many requests were cut.
func TestShutdownTimeoutCutsAndExitsNonZero(t *testing.T) {
	p := startProcess(t, "SHUTDOWN_TIMEOUT=1s")
	stream, br, _ := p.openStream(t)
	defer stream.Body.Close()
	p.waitHeld(t, 1)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 30*time.Second); code == 0 {
		t.Errorf("exit status 0 after SHUTDOWN_TIMEOUT cut a stream\n%s", p.out)
	}
	if !strings.Contains(p.out.String(), "1 request in flight was cut") {
		t.Errorf("the log does not say how many were cut:\n%s", p.out)
	}
	if _, err := io.ReadAll(br); err == nil {
		t.Error("the open stream ended cleanly: it should have been cut")
	}
}
