// Package actors is Cask's public façade: Start a Node with a Config and
// its actor system speaks to actors on other nodes as if they were local.
//
//	node, err := actors.Start(ctx, actors.Config{Name: "a@host1"})
//	...
//	defer node.Stop()
//	pid := actor.NewPID("b@host2", "greeter")
//	res, err := node.Root().RequestFuture(pid, msg, time.Second).Result()
//
// A PID's Address is the node's name, never an IP:port, so PIDs stay
// valid when paths change. Config is a plain struct: Name is the only
// required field and every zero field means the documented default.
// Stop is idempotent and waits for every goroutine the node started.
//
// The blocking methods (Connect, SpawnRemote) are thin wrappers over
// messages to the dist manager actor (Node.Dist), which actors can send
// themselves: dist.Connect, dist.Spawn, dist.MonitorNode, dist.Pin.
package actors
