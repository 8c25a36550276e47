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
// valid when paths change. Config is one plain struct tree: node-wide
// fields (Name, DataDir, identity, Logger) at the top and a section per
// layer (Transport, Dist, Membership) below. Name is the only required
// field and every zero field means the default its section's package
// documents; Start fills them in and rejects a bad value with an error
// naming its path (Config.Transport.IdleTimeout).
// Stop is idempotent and waits for every goroutine the node started.
//
// Config.MeterProvider, an OpenTelemetry metric.MeterProvider, turns on
// metrics: the cask.* instruments of the dist and membership layers and
// protoactor's own actor metrics (docs/observability.md).
// Node.DebugHandler serves a live debug page of the node (peers, SRTT
// plots, migrations, the membership overlay) and its data as JSON;
// Node.PeerInfo is the snapshot of the peers it is built on.
//
// A node admits only peers that prove the cluster secret: ClusterSecret,
// else CASK_COOKIE, else a per-user cookie file created on first use, so
// the nodes one user runs on one machine form a cluster with no
// configuration. OpenCluster is the explicit opt-out; MaxTrustedKeys,
// FirstContactRate and Dist.MaxPeers bound what strangers cost
// (docs/security.md).
//
// Request[T] sends a request and returns the typed reply or an error
// that errors.Is why there is none (dist.ErrUnreachable, dist.ErrUnknownNode,
// dist.ErrNotProtobuf, an identity error, context.DeadlineExceeded).
// Node.Disconnect closes a session on purpose.
//
// Node.Link and Node.Unlink link actors across nodes as Erlang's link/1;
// TrapExits props receive *dist.Exited instead of being stopped;
// SpawnRemote takes dist.SpawnLink and dist.SpawnMonitor, and
// RegisterKind dist.AllowSpawnBy (docs/dist.md, "Links").
//
// The blocking methods (Connect, SpawnRemote, Disconnect) are thin wrappers over
// messages to the dist manager actor (Node.Dist), which actors can send
// themselves: dist.Connect, dist.Spawn, dist.MonitorNode, dist.Pin.
package actors
