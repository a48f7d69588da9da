package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is a server process owned by the test binary.
type proc struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error
	logPath string
}

// runAs is the account servers run under: nil for the current user, the
// "postgres" account when we are root (initdb refuses root).
type runAs struct {
	uid, gid uint32
}

func postgresAccount() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and initdb refuses root, but there is no postgres user to run it as: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of postgres user %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of postgres user %q: %w", u.Gid, err)
	}
	return &runAs{uid: uint32(uid), gid: uint32(gid)}, nil
}

// sysProcAttr switches to as (if set) in the child itself rather than through
// runuser, and asks the kernel to kill the child when the test binary dies:
// a test run that is killed or crashes must not leave servers behind, and
// runuser would sit between us and the server and swallow that signal.
func sysProcAttr(as *runAs) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if as != nil {
		a.Credential = &syscall.Credential{Uid: as.uid, Gid: as.gid}
	}
	return a
}

// runTool runs a short-lived command (initdb) and returns its output in the
// error when it fails.
func runTool(dir string, as *runAs, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir // the child may not be allowed into our working directory
	cmd.Env = childEnv()
	cmd.SysProcAttr = sysProcAttr(as)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// childEnv is a small environment for server processes: ours may carry
// PG*/REDIS settings or a HOME the server account cannot read.
func childEnv() []string {
	env := []string{"LC_ALL=C.UTF-8", "LANG=C.UTF-8"}
	if p := os.Getenv("PATH"); p != "" {
		env = append(env, "PATH="+p)
	}
	return env
}

// startProc starts a server whose output goes to logPath.
func startProc(dir, logPath string, as *runAs, name string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open server log: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = childEnv()
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr(as)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), logPath: logPath}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, with its log tail.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("server exited (%v); log:\n%s", p.waitErr, p.logTail())
	default:
		return nil
	}
}

func (p *proc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// waitReady calls ping until it succeeds, the process exits or timeout passes.
func (p *proc) waitReady(timeout time.Duration, ping func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ping()
		if err == nil {
			return nil
		}
		if perr := p.exited(); perr != nil {
			return perr
		}
		if time.Now().After(deadline) {
			p.stop(syscall.SIGKILL, time.Second)
			return fmt.Errorf("not ready after %s: %w; log:\n%s", timeout, err, p.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends sig and waits up to grace before killing the process.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		_ = p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// ProcessCPU is the user and system CPU time the test binary has used so
// far, for benchmarks that report CPU per operation beside throughput.
func ProcessCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
