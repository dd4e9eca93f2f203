package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// userHZ is the unit of utime and stime in /proc/<pid>/stat: USER_HZ, 100
// on every Linux architecture Go supports.
const userHZ = 100

// child is a proxy under test running as its own process, so that its CPU
// time and memory are its alone.
type child struct {
	name string
	cmd  *exec.Cmd
	addr string // host:port on loopback
	// debug is the loopback host:port serving POST /debug/free-memory
	// (keygate's PPROF_ADDR, the floor's -debug).
	debug string
	errs  *tailBuffer
	done  chan struct{}
}

// buildBinaries builds keygate (the module's main package) and the floor
// into dir with the same toolchain and flags, and returns their paths.
func buildBinaries(ctx context.Context, dir string) (keygate, floor string, err error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", "", err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), ".", "./bench/floor")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return filepath.Join(dir, "keygate"), filepath.Join(dir, "floor"), nil
}

// workspace is what every run of phases starts from: a scratch directory
// with keygate and the floor built into it, and the in-process upstream.
type workspace struct {
	dir, kgBin, floorBin string
	up                   *upstream
}

// newWorkspace builds the binaries and starts the upstream (4 keys); on an
// error nothing of it is left behind.
func newWorkspace(ctx context.Context) (*workspace, error) {
	dir, err := os.MkdirTemp("", "keygate-bench-")
	if err != nil {
		return nil, err
	}
	w := &workspace{dir: dir}
	if w.kgBin, w.floorBin, err = buildBinaries(ctx, dir); err == nil {
		w.up, err = startUpstream(4)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return w, nil
}

// close stops the upstream and removes the directory.
func (w *workspace) close() error {
	err := w.up.close()
	os.RemoveAll(w.dir)
	return err
}

// moduleRoot is the directory of keygate's go.mod, wherever the bench runs.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the bench inside the keygate module")
	}
	return filepath.Dir(mod), nil
}

// childEnv is a minimal environment: the variables given, plus the Go
// runtime knobs of ours (GOGC, GOMAXPROCS, ...), so that a user's keys or
// settings never leak into a process under test.
func childEnv(vars ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, k := range []string{"GOGC", "GOMAXPROCS", "GOMEMLIMIT", "GODEBUG"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, vars...)
}

// startChild starts bin in dir. It is killed if the bench dies first.
func startChild(name, bin, dir string, args, env []string) (*child, io.ReadCloser, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	c := &child{name: name, cmd: cmd, errs: &tailBuffer{max: 8 << 10}, done: make(chan struct{})}
	cmd.Stderr = c.errs
	// A pipe of our own rather than StdoutPipe: Wait, run below as soon
	// as the child starts, would close StdoutPipe's reader and could lose
	// the child's last output; this one reads to the child's end.
	stdout, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stdout = w
	err = cmd.Start()
	w.Close()
	if err != nil {
		stdout.Close()
		return nil, nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	return c, stdout, nil
}

// startKeygate runs the keygate binary against upstream with keys and the
// extra settings (NAME=value), its logs discarded, and waits until /healthz
// answers.
func startKeygate(ctx context.Context, bin, dir, upstream string, keys []string, pprofAddr string, extra ...string) (*child, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	vars := []string{"OPENROUTER_BASE_URL=" + upstream, "PORT=" + strconv.Itoa(port), "SHUTDOWN_TIMEOUT=2s"}
	for i, k := range keys {
		vars = append(vars, "OPENROUTER_API_KEY_"+strconv.Itoa(i+1)+"="+k)
	}
	// The debug listener is always on: its free-memory endpoint settles
	// the idle size, and an idle listener costs a request nothing.
	if pprofAddr == "" {
		if pprofAddr, err = debugAddr(); err != nil {
			return nil, err
		}
	}
	vars = append(vars, "PPROF_ADDR="+pprofAddr)
	vars = append(vars, extra...)
	c, stdout, err := startChild("keygate", bin, dir, nil, childEnv(vars...))
	if err != nil {
		return nil, err
	}
	go func() { // keygate logs to stdout
		_, _ = io.Copy(c.errs, stdout)
		stdout.Close()
	}()
	c.addr, c.debug = "127.0.0.1:"+strconv.Itoa(port), pprofAddr
	if err := waitHealthy(ctx, c, "http://"+c.addr+"/healthz"); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// startFloor runs the floor binary in front of upstream with key and the
// extra environment (NAME=value); it prints its address when it listens.
func startFloor(ctx context.Context, bin, dir, upstream, key string, pool bool, extra ...string) (*child, error) {
	dbg, err := debugAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"-upstream", upstream, "-debug", dbg}
	name := "floor"
	if pool {
		args, name = append(args, "-pool"), "floor+pool"
	}
	c, stdout, err := startChild(name, bin, dir, args, childEnv(append([]string{"FLOOR_API_KEY=" + key}, extra...)...))
	if err != nil {
		return nil, err
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
		stdout.Close()
	}()
	select {
	case addr, ok := <-lines:
		if !ok {
			c.stop()
			return nil, fmt.Errorf("%s exited: %s", name, c.errs)
		}
		c.addr, c.debug = addr, dbg
	case <-time.After(10 * time.Second):
		c.stop()
		return nil, errors.New(name + " did not start in 10s")
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
	return c, waitHealthy(ctx, c, "http://"+c.addr+"/")
}

// waitHealthy polls url until it answers (any status for the floor, 200
// for keygate's /healthz), for up to 10 seconds.
func waitHealthy(ctx context.Context, c *child, url string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			return fmt.Errorf("%s exited: %s", c.name, c.errs)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || c.name != "keygate" {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after 10s: %s", c.name, c.errs)
}

// stop ends the process: SIGTERM, then SIGKILL after 3 seconds, and waits.
func (c *child) stop() {
	if c == nil {
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(3 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// cpuTime is the CPU time (user and system, all threads) the process used.
func cpuTime(pid int) (time.Duration, error) {
	user, sys, err := cpuTimes(pid)
	return user + sys, err
}

// cpuTimes is the user and the system CPU time (all threads) the process
// used: at a fixed rate the kernel's part, waking threads for each
// request, is as large as the program's own.
func cpuTimes(pid int) (user, sys time.Duration, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, errors.New("malformed /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, errors.New("malformed /proc stat times")
	}
	return time.Duration(ut) * time.Second / userHZ, time.Duration(st) * time.Second / userHZ, nil
}

// contextSwitches is how many times the process's threads were switched
// out so far, voluntarily (to wait for the network, a futex, a sleep) or
// not. A thread that has exited no longer counts; Go's threads rarely do.
func contextSwitches(pid int) (int64, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/status")
		if err != nil {
			continue // the thread exited meanwhile
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			name, v, ok := strings.Cut(line, ":")
			if !ok || (name != "voluntary_ctxt_switches" && name != "nonvoluntary_ctxt_switches") {
				continue
			}
			c, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s/%s/status: %s: %w", dir, t.Name(), name, err)
			}
			n += c
		}
	}
	return n, nil
}

// memory returns the resident set size now and its peak (VmRSS, VmHWM), in
// bytes.
func memory(pid int) (rss, peak int64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parsing %s: %w", name, err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	return rss, peak, nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// debugAddr is a free loopback address for a child's debug listener.
func debugAddr() (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(port), nil
}

// settle has c collect and return its free memory (POST
// /debug/free-memory), so that the idle size read next is what c holds:
// keygate lets its heap grow to GC_MIN_HEAP_BYTES before collecting, and
// an idle size with that garbage in it would make the memory per stream
// look smaller than it is.
func settle(ctx context.Context, c *child) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.debug+"/debug/free-memory", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("settling %s's memory: %w", c.name, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("settling %s's memory: status %d", c.name, resp.StatusCode)
	}
	return nil
}
