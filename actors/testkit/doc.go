// Package testkit helps test Cask actors against a real, local protoactor
// actor system, without sleeps: a test waits for the event it cares about,
// bounded by a timeout, and fails with a message that says what was missing.
//
// It has three tools of its own, and also speaks upstream protoactor-go's
// testkit API (see below).
//
// A [Probe] is an actor the test drives. It sends and requests on the
// test's behalf, queues whatever is sent to it, and lets the test take
// messages off the queue in order ([Probe.ExpectMsg], [ExpectMsgType],
// [Probe.FishForMessage], [Probe.ExpectNoMessage]). It can watch other
// actors and expect their *actor.Terminated. Use it to test an actor from
// the outside, by what it answers.
//
// A [MailboxStats] observes an actor from the inside. [WithStats] attaches it
// to the actor's props as mailbox middleware plus receiver and sender
// middleware, and it records four moments of every message:
//
//	Posted     put into the mailbox            MessagePosted, sender's goroutine
//	Delivered  about to be handed to Receive   receiver middleware, actor's goroutine
//	Received   handling finished               MessageReceived, actor's goroutine
//	Sent       sent by the actor               sender middleware, actor's goroutine
//
// Posted and Received include system messages (Watch, Stop...); Delivered
// only has what the actor's Receive sees. Within one actor, Delivered and
// Received follow processing order, and a message is Delivered before it is
// Received. A message whose handling panics is Delivered but never Received.
// The hooks only append to a list under a short lock and wake waiters; they
// never wait for the test.
//
// Waiting for Received is the way to know an actor has finished handling a
// message. The WaitFor methods look at messages recorded before the call as
// well, so there is no race between causing an event and waiting for it.
//
// A [Cluster] is N Cask nodes in one process on loopback with a fault
// handle per link ([Cluster.Link]: delay, loss, blackhole, changeable while
// running), for testing distributed actors: start a cluster, spawn actors
// on its nodes, degrade a link and watch what your actors do. Faults
// apply to the packets between two nodes' own sockets, so a connection
// that migrates to a fresh socket leaves them behind. Each node's socket
// comes from an adapter.Faulty (package transport/adapter), and a Link is
// a view of one adapter.Rule installed on both of its nodes' sockets for
// the other's address: the same fault model as every other test's.
//
// # Upstream protoactor-go's names
//
// Tests written for upstream's testkit package
// (github.com/asynkron/protoactor-go/testkit) port by changing the import
// path: [TestProbe] with [NewTestProbe] and the generic [GetNextMessageOf],
// [GetNextMessageWhere], [FishForMessage], [FishForMessageOf] and
// [RequestFuture]; [TestMailboxStats] with the props options
// [WithMailboxStats], [WithReceiveStats] and [WithSendStats]; and
// [AwaitCondition]. They keep upstream's semantics: the test spawns the
// probe, a zero timeout means one second ([DefaultTimeout]), and nothing
// fails the test: errors are returned, wrapping [ErrTimeout] or
// [ErrUnexpectedMessage]. They work the same whether the actor under test
// is local or on another node. docs/testing.md has the porting table and
// the few differences.
//
// A zero timeout means DefaultTimeout on a [Probe] too; a negative one
// means no wait.
//
// # Example
//
// A mailbox-level test: send work, wait until the actor has handled all of
// it, then check what it did.
//
//	func TestWorkerAcknowledgesEveryJob(t *testing.T) {
//		system := actor.NewActorSystem()
//		t.Cleanup(system.Shutdown)
//		probe := testkit.NewProbe(t, system)
//		stats := testkit.NewMailboxStats()
//		worker := system.Root.Spawn(testkit.WithStats(actor.PropsFromFunc(receiveJobs), stats))
//
//		for i := range 3 {
//			probe.Request(worker, &Job{ID: i})
//		}
//		done := func() bool { return testkit.Count[*Job](stats).Received == 3 }
//		if !stats.WaitUntil(done, time.Second) {
//			t.Fatalf("jobs not handled: %v", stats.CountsByType())
//		}
//		if got := testkit.Count[*Ack](stats).Sent; got != 3 {
//			t.Fatalf("worker sent %d acks, want 3", got)
//		}
//		ack := testkit.ExpectMsgType[*Ack](probe, time.Second)
//		if ack.ID != 0 {
//			t.Fatalf("first ack is for job %d, want 0", ack.ID)
//		}
//	}
//
// The Probe methods that fail the test (the Expect methods,
// Probe.FishForMessage, Probe.Respond) call t.Fatalf and so must run on the
// test's goroutine.
package testkit
