// Package redistest runs a real redis-server (Debian's package) for tests:
// on a unix socket in a temporary directory, without persistence, killed at
// cleanup. It can freeze, thaw, kill and restart the server, for tests of
// what keygate does while Redis is away. Under CI=true a missing
// redis-server fails the test; elsewhere it skips it.
package redistest

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is one redis-server process.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	sock string
	cfg  Config
	port int
	tls  *tls.Config
	cmd  *exec.Cmd
	done chan struct{}
}

// Config asks for a server that needs a password, or speaks TLS on a
// loopback TCP port (with a certificate of its own, see ClientTLS).
type Config struct {
	Password string
	TLS      bool
}

// Start runs redis-server for the rest of t, on a unix socket, without a
// password.
func Start(t testing.TB) *Server { return StartWith(t, Config{}) }

// Need returns the path of redis-server; without one it fails t under
// CI=true and skips it elsewhere. For tests that start Redis some other
// way (the bench starts its own).
func Need(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not installed (apt-get install redis-server); CI needs it: %v", err)
		}
		t.Skipf("redis-server is not installed: %v", err)
	}
	return bin
}

// StartWith runs redis-server as cfg asks.
func StartWith(t testing.TB, cfg Config) *Server {
	t.Helper()
	bin := Need(t)
	// A socket path must fit in 108 bytes; t.TempDir() can be longer.
	dir, err := os.MkdirTemp("", "redistest")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: bin, dir: dir, sock: filepath.Join(dir, "redis.sock"), cfg: cfg}
	t.Cleanup(func() {
		s.Kill()
		_ = os.RemoveAll(dir)
	})
	if cfg.TLS {
		s.tls = writeCert(t, dir)
		s.port = freePort(t)
	}
	s.start()
	return s
}

// URL is the server's REDIS_URL: unix://, or rediss:// for TLS, with the
// password when there is one.
func (s *Server) URL() string { return s.URLWithPassword(s.cfg.Password) }

// URLWithPassword is URL with another password (none when empty), for
// tests of a client that cannot log in.
func (s *Server) URLWithPassword(pw string) string {
	u := url.URL{Scheme: "unix", Path: s.sock}
	if s.cfg.TLS {
		u = url.URL{Scheme: "rediss", Host: "127.0.0.1:" + strconv.Itoa(s.port), Path: "/0"}
	}
	if pw != "" {
		u.User = url.UserPassword("", pw)
	}
	return u.String()
}

// ClientTLS is a client configuration that trusts the server's
// certificate (nil without TLS).
func (s *Server) ClientTLS() *tls.Config {
	if s.tls == nil {
		return nil
	}
	return s.tls.Clone()
}

// Socket is the path of the server's unix socket.
func (s *Server) Socket() string { return s.sock }

func (s *Server) start() {
	s.t.Helper()
	args := []string{"--port", "0", "--unixsocket", s.sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--loglevel", "warning"}
	if s.cfg.Password != "" {
		args = append(args, "--requirepass", s.cfg.Password)
	}
	if s.cfg.TLS {
		args = append(args, "--bind", "127.0.0.1", "--tls-port", strconv.Itoa(s.port),
			"--tls-cert-file", filepath.Join(s.dir, "cert.pem"), "--tls-key-file", filepath.Join(s.dir, "key.pem"),
			"--tls-ca-cert-file", filepath.Join(s.dir, "cert.pem"), "--tls-auth-clients", "no")
	}
	s.cmd = exec.Command(s.bin, args...)
	out, err := os.Create(filepath.Join(s.dir, "redis.log"))
	if err != nil {
		s.t.Fatal(err)
	}
	s.cmd.Stdout, s.cmd.Stderr = out, out
	if err := s.cmd.Start(); err != nil {
		out.Close()
		s.t.Fatalf("starting redis-server: %v", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		out.Close()
		close(done)
	}(s.cmd, s.done)
	deadline := time.Now().Add(10 * time.Second)
	for !s.answers() {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(out.Name())
			s.t.Fatalf("redis-server did not answer within 10s; its log:\n%s", log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// answers reports whether PING gets PONG.
func (s *Server) answers() bool {
	reply, err := s.Do("PING")
	return err == nil && reply == "+PONG"
}

// Do sends one inline command and returns the first line of the reply, as
// a raw RESP line ("+OK", ":12", "$5" …); enough to check the server.
func (s *Server) Do(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", s.sock)
	if err != nil {
		return "", fmt.Errorf("dialing redis: %w", err)
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	_ = c.SetDeadline(deadline)
	var b strings.Builder
	cmds := [][]string{args}
	if s.cfg.Password != "" {
		cmds = [][]string{{"AUTH", s.cfg.Password}, args}
	}
	for _, cmd := range cmds {
		fmt.Fprintf(&b, "*%d\r\n", len(cmd))
		for _, a := range cmd {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", fmt.Errorf("writing to redis: %w", err)
	}
	rd := bufio.NewReader(c)
	var line string
	for range cmds {
		if line, err = rd.ReadString('\n'); err != nil {
			return "", fmt.Errorf("reading from redis: %w", err)
		}
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redis-server: %v: %v", sig, err)
	}
}

// Freeze stops the process (SIGSTOP): connections stay open, nothing
// answers, as with `docker pause`.
func (s *Server) Freeze() { s.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen server (SIGCONT).
func (s *Server) Thaw() { s.signal(syscall.SIGCONT) }

// Kill ends the server (SIGKILL after SIGCONT, so a frozen one dies too)
// and waits for it; the data is gone. Safe to call twice.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Restart kills the server and starts an empty one on the same socket.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	_ = os.Remove(s.sock)
	s.start()
}
