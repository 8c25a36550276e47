// Package adapter holds socket adapters beyond a plain UDP socket: fault
// injection and relays. Each type here has an Open method returning a
// net.PacketConn, so it satisfies transport.SocketAdapter and can supply a
// node's socket (transport.Config.Adapter, actors.Config.Adapter), the
// socket of a connection dialed with Transport.DialVia, or the new path of
// a migration (Conn.Migrate, dist.MigrationAdapter). The package does not
// import transport; it declares the one method it needs from an inner
// adapter as Opener.
//
// # Fault injection
//
// Faulty wraps another adapter and injects faults into every socket it
// opens. There is one fault model, Faults: a one-way Delay added to
// outgoing packets, a Loss probability for outgoing packets, and
// Blackhole, which drops every packet in and out. A Rule holds one
// changeable set of Faults with its own seeded random source, so the same
// seed and the same sequence of packets give the same drops. A Faulty
// applies its own rule to the whole socket and, on top of it, one rule per
// destination address (Faulty.Dest, Faulty.SetDest): a packet to or from
// an address with a rule gets both, its delays added and each rule's loss
// drawn separately. One Rule may be installed on several sockets; the
// actors/testkit Cluster installs a link's rule on both nodes' sockets, so
// one handle degrades the link in both directions.
//
// Delayed packets keep their order per destination, even when the delay
// shrinks, and do not hold back packets to other destinations. At most
// 16,384 packets per socket are held back; beyond that packets are
// dropped, like a full router queue. A socket holding packets back runs
// one goroutine, started with the first delayed packet and stopped by
// Close, which drops what is still held back. Settings may change at any
// time from any goroutine; a change applies to the next packet, and a
// held-back packet is dropped if its destination is blackholed when it
// falls due.
//
// # Relays
//
// Relay is a small UDP forwarder for tests and documentation on loopback:
// dialing Relay.Addr reaches the relay's target, which sees one distinct
// address per client. Relayed opens sockets that send every packet to a
// relay while reporting the relay's packets as coming from the address
// last written to, so the QUIC connection on top keeps addressing the
// peer: dial through a relay with Transport.DialVia, or move a connection
// onto a relay, or from one relay to another, with Conn.Migrate. One
// Relayed socket serves one peer.
package adapter
