// Command testnode is a Cask node in a process of its own, for tests that
// are about processes: crashes, restarts and membership across separate
// OS processes. internal/proctest builds and runs it; it is not meant for
// users.
//
// Flags configure the node (testnode -h lists them): -name, -listen, the
// contact to join through (-contact name@host and -contact-addr ip:port,
// which also goes into the static discovery map), -data-dir (empty: an
// ephemeral identity), -shuffle (the membership shuffle period),
// -idle-timeout (Config.Transport.IdleTimeout), -dns
// (DNS discovery, off by default) and -advertise (Config.AdvertiseAddr).
// The cluster secret comes from CASK_COOKIE, as for any node.
//
// Output: one JSON object per line on stdout, one per event, each with
// "event" and "t" (RFC 3339 time with nanoseconds):
//
//	{"event":"started","node":"a@h","addr":"127.0.0.1:7000","incarnation":"...","key":"<hex>"}
//	{"event":"peer_up","peer":"b@h"}                     membership PeerUp
//	{"event":"peer_down","peer":"b@h","reason":"failed"} membership PeerDown
//	{"event":"joined","peer":"c@h"}                      membership Joined (peer: the contact)
//	{"event":"node_up","peer":"b@h","incarnation":"..."} dist NodeUp (a session came up)
//	{"event":"node_down","peer":"b@h","reason":"..."}    dist NodeDown
//	{"event":"node_unreachable","peer":"b@h","err":"..."} dist NodeUnreachable
//	{"event":"node_reachable","peer":"b@h"}              dist NodeReachable
//	{"event":"sent","peer":"b@h","sent":5000}            "send" done: the total sent to b@h
//	{"event":"received","received":5000,"duplicates":0,"reordered":0}  answer to "received"
//	{"event":"tally","peer":"b@h","sent":8000,"dead_lettered":3000,"session_ended":3000,
//	 "unacknowledged":0,"stats_dead_lettered":3000}     answer to "tally"
//	{"event":"view","active":[...],"passive":[...]}      a view changed, or "views" on stdin
//	{"event":"pong","peer":"b@h","ms":1.2,"err":"..."}   answer to "ping" on stdin
//	{"event":"untrusted","peer":"b@h","err":"..."}       answer to "untrust" on stdin
//	{"event":"stopped","err":"..."}                      after a graceful stop
//	{"event":"error","err":"..."}                        start-up failed (exit status 1)
//
// Logs go to stderr (text, level from -log, default warn).
//
// Commands, one per line on stdin:
//
//	views         print a "view" event now
//	ping <node>   send a request to the "echo" actor of <node> (every
//	              testnode runs one) and print a "pong" event with the
//	              round trip or the error; -ping-timeout bounds it
//	untrust <node> Node.UntrustPeer(<node>), then an "untrusted" event
//	send <node> <n> send the next n numbers (Int64Value, counting from 1
//	              per peer) to the "counter" actor of <node> (every
//	              testnode runs one), then print a "sent" event
//	received      print what this node's counter received: how many,
//	              how many were duplicates, how many out of order
//	tally <node>  print the numbers sent to <node>, their dead letters
//	              (all, and those with dist.ErrSessionEnded), and
//	              Node.SessionStats(<node>)
//	stop          stop gracefully, as on SIGTERM
//
// SIGTERM and SIGINT stop the node gracefully (membership Leave, dist
// Stop) and exit with status 0; end of stdin does not stop it.
package main
