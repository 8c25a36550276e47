// Package proctest runs Cask nodes as separate OS processes, for tests
// that are about processes: kill -9, SIGTERM, restart with the same
// flags, membership across processes. The node program is
// internal/testnode; its doc.go lists its flags, its stdin commands and
// the events it prints.
//
// Use:
//
//	func TestMain(m *testing.M) { os.Exit(proctest.M(testhome.M(m)).Run()) }
//
//	func TestRestart(t *testing.T) {
//		bin := proctest.Build(t)             // once per test binary
//		t.Setenv("CASK_COOKIE", "secret")    // children inherit the environment
//		a := proctest.Start(t, bin, "-name", "a@test", "-listen", "127.0.0.2:0")
//		started := a.MustWaitFor(t, proctest.Kind("started"), 30*time.Second)
//		...
//		a.Kill()                             // kill -9, waits for the exit
//		a = a.Restart(t)                     // same binary, flags and environment
//	}
//
// M must wrap the test binary's Run (outside testhome.M, which changes
// HOME): it notes the environment go build needs and removes the built
// binary when the tests are done. Build compiles internal/testnode once
// per test binary, with the go command on PATH.
//
// A Proc is one started process. Its stdout is read on a goroutine of its
// own into a list of Events (every line; lines that are not JSON have
// Kind "" and the text in Raw); stderr is kept (the last 64 KiB) and
// logged with the events when the test fails. Every process a test
// starts is killed (SIGKILL) at the end of the test if still running,
// and waited for. Wait, WaitFor and the stop methods are bounded in
// time; none blocks forever.
//
// Methods of Proc may be called from any goroutine.
package proctest
